"""Pre-activation basic-block ResNets: Wide ResNets (Zagoruyko & Komodakis 2016) and Jia et al.'s ResNet-68.

Layout (one class, :class:`PreActBasicResNet`, n blocks per stage, stage widths w1/w2/w3):

    conv3x3(in -> 16)
    3 stages of n blocks, stride 2 entering stages 2 and 3:
        y = x' + F(x),  F = conv3x3 . [dropout] . ReLU . BN . conv3x3(stride) . ReLU . BN
    where x' = x, or conv1x1(stride)(ReLU(BN(x))) when the shape changes (the block's own pre-activation)
    BN - ReLU - global average pool - fully connected

- WRN-d-k (Jia et al. 2017, Tables 2-3: WRN-28-10, WRN-28-16): n = (d - 4)/6, widths 16k/32k/64k. WRN's depth
  counts convolutions, the three 1x1 shortcut convs included and the classifier not: 1 + 6n + 3 = d.
  Dropout is off, as in Jia et al. ("the same as that of WRN-28-10 in [27]", no dropout mentioned; the
  4.17/20.50 baseline they quote for WRN-28-10 is Zagoruyko's dropout-free one).
- Pre-act ResNet-68 (Jia et al. 2017, Table 1, Sec. 6.2): the ConvNet of Sec. 6.1 made residual, "identity
  shortcut to connect every two conv layers of 3x3 filters, and projection shortcut when sub-sampling";
  X = 11 blocks per stage, widths 16/32/64: 6X + 2 = 68 weight layers (stem, 66 convs, classifier; the two
  1x1 projections not counted). The first stage keeps 16 channels, so it has no projection.
"""

from __future__ import annotations

import torch
from torch import nn

from normbench.models.layers import Block, PreActClassifier, conv1x1, conv3x3, init_he


class PreActBasicBlock(Block):
    """Pre-activation basic block: BN-ReLU-conv3x3(stride), BN-ReLU-[dropout]-conv3x3, plus the skip.

    The projection (when the shape changes) acts on the block's pre-activation ReLU(BN(x)), as in WRN's code.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.transition = stride != 1 or c_in != c_out
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = conv3x3(c_in, c_out, stride)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = conv3x3(c_out, c_out)
        self.relu = nn.ReLU(inplace=False)
        self.shortcut = conv1x1(c_in, c_out, stride) if self.transition else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.bn1(x))
        out = self.conv2(self.drop(self.relu(self.bn2(self.conv1(pre)))))
        return out + (x if self.shortcut is None else self.shortcut(pre))


class PreActBasicResNet(PreActClassifier, nn.Module):
    """Pre-activation basic-block ResNet with ``n`` blocks per stage and stage widths ``widths``."""

    def __init__(
        self,
        n: int,
        widths: tuple[int, int, int],
        num_classes: int = 10,
        in_channels: int = 3,
        dropout: float = 0.0,
        stem_width: int = 16,
    ) -> None:
        super().__init__()
        if n < 1:
            raise ValueError(f"need at least one block per stage, got {n}")
        self.conv1 = conv3x3(in_channels, stem_width)
        blocks: list[nn.Module] = []
        c_in = stem_width
        for stage, width in enumerate(widths):
            for i in range(n):
                stride = 2 if (stage > 0 and i == 0) else 1
                blocks.append(PreActBasicBlock(c_in, width, stride, dropout))
                c_in = width
        self.blocks = nn.Sequential(*blocks)
        self._init_classifier(c_in, num_classes)
        init_he(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.blocks(self.conv1(x)))


def wide_resnet(
    depth: int, widen: int, num_classes: int = 10, in_channels: int = 3, dropout: float = 0.0
) -> PreActBasicResNet:
    """WRN-``depth``-``widen``: n = (depth - 4)/6 blocks per stage, widths 16k/32k/64k."""
    if depth < 10 or (depth - 4) % 6 != 0:
        raise ValueError(f"WRN depth must be 6n + 4, got {depth}")
    n = (depth - 4) // 6
    widths = (16 * widen, 32 * widen, 64 * widen)
    return PreActBasicResNet(n, widths, num_classes=num_classes, in_channels=in_channels, dropout=dropout)


def preact_basic_resnet(depth: int, num_classes: int = 10, in_channels: int = 3) -> PreActBasicResNet:
    """Pre-act basic-block ResNet of depth 6X + 2 (Jia et al.'s ResNet-68: X = 11), widths 16/32/64."""
    if depth < 8 or (depth - 2) % 6 != 0:
        raise ValueError(f"basic pre-act depth must be 6X + 2, got {depth}")
    return PreActBasicResNet((depth - 2) // 6, (16, 32, 64), num_classes=num_classes, in_channels=in_channels)
