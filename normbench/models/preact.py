"""Pre-activation bottleneck ResNet for CIFAR (He et al. 2016, "Identity Mappings") and its Plain twin.

Layout of pre-act ResNet-n, n = 9m + 2 (Zaeemzadeh et al. 2020, Table 2; Oyedotun et al.):

    conv3x3(in -> 16)
    3 stages of m bottleneck blocks, bottleneck widths 16/32/64, outputs 64/128/256,
    stride 2 at the first block of stages 2 and 3:
        y = x' + F(x),  F = conv1x1 . ReLU . BN . conv3x3 . ReLU . BN . conv1x1 . ReLU . BN
    where x' = x, or a 1x1 (strided) projection of ReLU(BN(x)) in the first block of a stage
    BN - ReLU - global average pool - fully connected

Depth counts the stem, the 3 weight layers of each of the 3m blocks and the classifier: 9m + 2.

Plain-n is the same network with every skip path removed (``skip=False``): y = F(x). Its first block of a
stage has no projection either, so it has slightly fewer parameters than the ResNet.
"""

from __future__ import annotations

import torch
from torch import nn


def conv3x3(c_in: int, c_out: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck: BN-ReLU-1x1, BN-ReLU-3x3 (stride), BN-ReLU-1x1 (x4 expansion).

    ``skip=True``: y = shortcut(x) + F(x); ``skip=False`` (Plain): y = F(x).
    ``erase_relu=True`` drops the ReLU after the last BN of the block (EraseReLU, Dong et al. 2017).
    """

    expansion = 4

    def __init__(
        self,
        c_in: int,
        width: int,
        stride: int = 1,
        skip: bool = True,
        groups: int = 1,
        erase_relu: bool = False,
    ) -> None:
        super().__init__()
        c_out = width * self.expansion
        self.skip = skip
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = conv1x1(c_in, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn3 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, c_out)
        self.relu = nn.ReLU(inplace=False)
        self.erase_relu = erase_relu
        self.shortcut: nn.Module | None = None
        if skip and (stride != 1 or c_in != c_out):
            self.shortcut = conv1x1(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.bn3(out)
        out = self.conv3(out if self.erase_relu else self.relu(out))
        if not self.skip:
            return out
        identity = x if self.shortcut is None else self.shortcut(pre)
        return identity + out


class PreActResNet(nn.Module):
    """Pre-activation bottleneck ResNet (``skip=True``) or Plain network (``skip=False``) of depth 9m + 2."""

    def __init__(
        self,
        depth: int,
        num_classes: int = 10,
        in_channels: int = 3,
        skip: bool = True,
        erase_relu: bool = False,
        widths: tuple[int, int, int] = (16, 32, 64),
    ) -> None:
        super().__init__()
        if (depth - 2) % 9 != 0:
            raise ValueError(f"bottleneck pre-act depth must be 9m + 2, got {depth}")
        m = (depth - 2) // 9
        self.depth = depth
        self.conv1 = conv3x3(in_channels, widths[0])
        blocks: list[nn.Module] = []
        c_in = widths[0]
        for stage, width in enumerate(widths):
            for i in range(m):
                stride = 2 if (stage > 0 and i == 0) else 1
                blocks.append(PreActBottleneck(c_in, width, stride, skip=skip, erase_relu=erase_relu))
                c_in = width * PreActBottleneck.expansion
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(c_in)
        self.relu = nn.ReLU(inplace=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)
        init_he(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(self.conv1(x))
        out = self.pool(self.relu(self.bn(out)))
        return self.fc(torch.flatten(out, 1))


def init_he(model: nn.Module) -> None:
    """He (fan-out) normal init for convolutions, BN gamma = 1 and beta = 0, PyTorch default for FC."""
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(mod, nn.BatchNorm2d):
            nn.init.ones_(mod.weight)
            nn.init.zeros_(mod.bias)
