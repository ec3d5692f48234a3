"""Conv-BN-ReLU networks of He et al. 2016 (CIFAR, Sec. 4.2), plain and residual, depth 6n + 2.

Layout (32x32 input; any size >= 8 works thanks to adaptive pooling):

    conv3x3(in -> 16) - BN - ReLU
    3 stages of n two-layer blocks, widths 16/32/64, stride 2 in the first conv of stages 2 and 3:
        plain:     y = ReLU(BN(conv3x3(ReLU(BN(conv3x3(x))))))
        residual:  y = ReLU(BN(conv3x3(ReLU(BN(conv3x3(x))))) + s(x))
    global average pool - fully connected

Depth counts the stem, the 6n convolutions and the classifier (shortcut projections not counted): 6n + 2.
The plain network is a stack of "repetitive triple modules of Conv-BN-ReLU" (Xie et al. 2017, Fig. 1); its
pairs of modules are grouped into blocks only so that the probes see the same block boundaries as in the
residual twin.

Who trains which (see :mod:`normbench.models.zoo`):

- Jia et al. 2017 (SVB), Sec. 6.1: "ConvNets" with 6X + 2 layers, X = 3, 6 (ConvNet-20, -38): the plain net.
- Xie et al. 2017, Sec. 5.1: plain-44 and plain-110 (n = 7, 18), and the residual counterparts with
  "3x3 projection shortcuts instead of identity ones" when the width doubles: ``shortcut="conv3x3"``
  (a strided 3x3 conv + BN on the skip path of the two transition blocks, identity elsewhere).
- Oyedotun et al., Tables I-III: PlainNet-164 and ResNet-164 "follow [He et al. 2016]" (n = 27). He et al.'s
  CIFAR networks use the parameter-free shortcut ("option A": subsample, zero-pad channels):
  ``shortcut="zero_pad"``. This layout gives 2.60M parameters, the 2.6M Oyedotun et al. report for ResNet-164
  (the bottleneck pre-act ResNet-164 has 1.70M).

``shortcut="conv1x1"`` (He et al.'s "option B", 1x1 conv + BN) is available for ImageNet-style nets.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from normbench.models.layers import Block, ZeroPadShortcut, conv1x1, conv3x3, init_he

ShortcutKind = Literal["zero_pad", "conv1x1", "conv3x3"]


def make_shortcut(kind: ShortcutKind, c_in: int, c_out: int, stride: int) -> nn.Module:
    """Skip path of a post-activation block whose shape changes: option A, B, or Xie's 3x3 projection."""
    if kind == "zero_pad":
        return ZeroPadShortcut(c_in, c_out, stride)
    if kind == "conv1x1":
        return nn.Sequential(conv1x1(c_in, c_out, stride), nn.BatchNorm2d(c_out))
    if kind == "conv3x3":
        return nn.Sequential(conv3x3(c_in, c_out, stride), nn.BatchNorm2d(c_out))
    raise ValueError(f"unknown shortcut kind {kind!r}; use zero_pad, conv1x1 or conv3x3")


class BasicBlock(Block):
    """Post-activation basic block (He et al. 2016): two Conv-BN-ReLU modules, the skip added before the
    second ReLU. ``skip=False`` removes the skip path (plain): y = ReLU(BN(conv(ReLU(BN(conv(x)))))).
    """

    def __init__(
        self, c_in: int, c_out: int, stride: int = 1, skip: bool = True, shortcut: ShortcutKind = "conv1x1"
    ) -> None:
        super().__init__()
        self.skip = skip
        self.transition = stride != 1 or c_in != c_out
        self.conv1 = conv3x3(c_in, c_out, stride)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = conv3x3(c_out, c_out)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=False)
        self.shortcut: nn.Module | None = None
        if skip and self.transition:
            self.shortcut = make_shortcut(shortcut, c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.skip:
            out = out + (x if self.shortcut is None else self.shortcut(x))
        return self.relu(out)


class ConvNet(nn.Module):
    """He et al. 2016 CIFAR network of depth 6n + 2: plain (``skip=False``) or residual (``skip=True``)."""

    def __init__(
        self,
        depth: int,
        num_classes: int = 10,
        in_channels: int = 3,
        skip: bool = False,
        shortcut: ShortcutKind = "zero_pad",
        widths: tuple[int, int, int] = (16, 32, 64),
    ) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(f"Conv-BN-ReLU CIFAR depth must be 6n + 2 with n >= 1, got {depth}")
        n = (depth - 2) // 6
        self.depth = depth
        self.conv1 = conv3x3(in_channels, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=False)
        blocks: list[nn.Module] = []
        c_in = widths[0]
        for stage, width in enumerate(widths):
            for i in range(n):
                stride = 2 if (stage > 0 and i == 0) else 1
                blocks.append(BasicBlock(c_in, width, stride, skip=skip, shortcut=shortcut))
                c_in = width
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)
        init_he(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(self.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(self.pool(out), 1))
