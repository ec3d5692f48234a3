"""Pre-activation bottleneck ResNet for CIFAR (He et al. 2016, "Identity Mappings") and its Plain twin.

Layout of pre-act ResNet-n, n = 9m + 2 (Zaeemzadeh et al. 2020, Table 2 and Sec. 4; official code
``models/resnet.py``):

    conv3x3(in -> 16)
    3 stages of m bottleneck blocks, bottleneck widths 16/32/64, outputs 64/128/256,
    stride 2 at the first block of stages 2 and 3:
        y = x' + F(x),  F = conv1x1 . ReLU . BN . conv3x3 . ReLU . BN . conv1x1 . ReLU . BN
    where x' = x, or a 1x1 (strided) projection of ReLU(BN(x)) in the first block of a stage
    BN - ReLU - global average pool - fully connected

Depth counts the stem, the 3 weight layers of each of the 3m blocks and the classifier: 9m + 2 (the three
projection shortcuts are not counted, as in the papers).

Plain-n is the same network with every skip path removed (``skip=False``): y = F(x). Its first block of a
stage has no projection either (the official code's ``type='Plain'`` drops the whole ``Shortcut``), so it
has slightly fewer parameters than the ResNet.

EraseReLU (Dong et al. 2017, used in Zaeemzadeh et al. Table 2): ``erase_relu=True`` removes the ReLU after
the last BN of every block, F = conv1x1 . BN . conv3x3 . ReLU . BN . conv1x1 . ReLU . BN.

Pre-act ResNeXt (:mod:`normbench.models.resnext`) is the same network with a grouped 3x3 convolution and
bottleneck widths that need not be a quarter of the output widths (``groups``, ``out_widths``).

Deviation from the official (Chainer) code, parameter count unchanged up to a few hundred BN parameters: the
official ResNet applies BN-ReLU after the stem and lets the first block skip its own BN-ReLU; here the first
block's BN-ReLU plays that role (same function, same count). Its transition shortcuts also own a separate BN
(``Shortcut.bn``, 384 parameters in all) where this one shares the block's pre-activation, as in He et al.
"""

from __future__ import annotations

import torch
from torch import nn

from normbench.models.layers import Block, PreActClassifier, conv1x1, conv3x3, init_he

__all__ = ["PreActBottleneck", "PreActResNet", "conv1x1", "conv3x3", "init_he"]


class PreActBottleneck(Block):
    """Pre-activation bottleneck: BN-ReLU-1x1, BN-ReLU-3x3 (stride, ``groups``), BN-ReLU-1x1.

    ``c_out`` defaults to ``4 * width`` (He et al.). ``skip=True``: y = shortcut(x) + F(x), the shortcut being
    the identity or, when the shape changes, a 1x1 (strided) convolution of ReLU(BN(x)); ``skip=False``
    (Plain): y = F(x). ``erase_relu=True`` drops the ReLU after the last BN (EraseReLU, Dong et al. 2017).
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
        c_out: int | None = None,
    ) -> None:
        super().__init__()
        c_out = width * self.expansion if c_out is None else c_out
        self.skip = skip
        self.transition = stride != 1 or c_in != c_out
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = conv1x1(c_in, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn3 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, c_out)
        self.relu = nn.ReLU(inplace=False)
        self.erase_relu = erase_relu
        self.shortcut: nn.Module | None = None
        if skip and self.transition:
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


class PreActResNet(PreActClassifier, nn.Module):
    """Pre-activation bottleneck ResNet (``skip=True``) or Plain network (``skip=False``) of depth 9m + 2.

    ``widths``: bottleneck (3x3) widths of the three stages; ``out_widths``: block outputs (default
    ``4 * widths``); ``groups``: groups of the 3x3 convolution (ResNeXt cardinality).
    """

    def __init__(
        self,
        depth: int,
        num_classes: int = 10,
        in_channels: int = 3,
        skip: bool = True,
        erase_relu: bool = False,
        widths: tuple[int, int, int] = (16, 32, 64),
        out_widths: tuple[int, int, int] | None = None,
        groups: int = 1,
        stem_width: int = 16,
    ) -> None:
        super().__init__()
        if depth < 11 or (depth - 2) % 9 != 0:
            raise ValueError(f"bottleneck pre-act depth must be 9m + 2 with m >= 1, got {depth}")
        m = (depth - 2) // 9
        out_widths = tuple(4 * w for w in widths) if out_widths is None else out_widths
        self.depth = depth
        self.conv1 = conv3x3(in_channels, stem_width)
        blocks: list[nn.Module] = []
        c_in = stem_width
        for stage, (width, c_out) in enumerate(zip(widths, out_widths, strict=True)):
            for i in range(m):
                stride = 2 if (stage > 0 and i == 0) else 1
                blocks.append(
                    PreActBottleneck(
                        c_in, width, stride, skip=skip, groups=groups, erase_relu=erase_relu, c_out=c_out
                    )
                )
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self._init_classifier(c_in, num_classes)
        init_he(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.blocks(self.conv1(x)))
