"""ResNeXt for CIFAR (S. Xie, Girshick et al. 2017, "Aggregated residual transformations", the ResNeXt paper;
not the suite's xie2017), as trained by Oyedotun et al. (ResNeXt-164, Tables I-III, 2.5M).

Oyedotun et al.: "The ResNet and ResNeXt follow the construction configurations in [29] and [34]", [34] being
the ResNeXt paper. Two layouts are registered:

``resnext164`` (:class:`ResNeXt`, the one config/paper.yaml trains): the block as [34] builds it, Fig. 3(c)
with [34] Sec. 4: "We perform batch normalization (BN) right after the convolutions. ReLU is performed right
after each BN, expect for the output of the block where ReLU is performed after the adding to the shortcut,
following [14]" (post-activation), the stride-2 down-sampling "in the 3x3 layer of the first block in each
stage", projection shortcuts (type B of [14]: 1x1 conv + BN) where the shape changes, identity elsewhere:

    conv3x3(in -> 16) - BN - ReLU
    3 stages of m blocks, grouped widths C*d, 2*C*d, 4*C*d, outputs 64/128/256, stride 2 entering stages 2-3:
        y = ReLU(BN(conv1x1(-> out)(ReLU(BN(gconv3x3_C(ReLU(BN(conv1x1(-> C*d)(x)))))))) + s(x))
    global average pool - fully connected

``preact_resnext164`` (:func:`preact_resnext`, a named variant): the pre-act bottleneck ResNet of
:mod:`normbench.models.preact` with the 3x3 convolution split into C groups; BN-ReLU before each conv, the
sum not followed by a ReLU, a final BN-ReLU before the pooling. It is the layout the suite used before; with
it, Oyedotun's "ResNeXt beats ResNet" compares a pre-activation ResNeXt with the post-activation ResNet-164
of [29], i.e. block types as well as aggregation.

Aggregating C paths of ``1x1 -> 3x3 -> 1x1`` (Oyedotun et al. Eq. 6-8, Fig. 2 right) equals the grouped form
(ResNeXt paper, Fig. 3b-c). The blocks have three layers because two-layer grouped blocks collapse to a wide
dense block (ResNeXt paper, Sec. 3.3), so ResNeXt-164 is the bottleneck depth 9m + 2 with m = 18.

What [34] does not fix for a 164-layer CIFAR net, and is our choice: [34]'s own CIFAR network (ResNeXt-29,
3 blocks per stage, 64-channel stem, outputs 256/512/1024) has 34.4M parameters, far from Oyedotun et al.'s
2.5M; we keep the 164-layer template of He et al. (16-channel stem, outputs 64/128/256, 18 blocks per stage)
and choose the cardinality C and bottleneck width d, which Oyedotun et al. do not give. C x d = 4 x 8d (grouped
widths 32/64/128) gives 2,475,354 parameters post-activation (2,474,458 pre-activation) at 10 classes, -1.0%
from the paper's 2.5M; the neighbouring choices are far off (post-activation counts): 2 x 16d 3.35M,
8 x 4d 2.04M, 16 x 2d 1.82M, 4 x 4d 1.05M, 8 x 8d 4.89M. Hence the default 4 x 8d in both layouts.
"""

from __future__ import annotations

import torch
from torch import nn

from normbench.models.imagenet import Bottleneck
from normbench.models.layers import conv3x3, init_he
from normbench.models.preact import PreActResNet


class ResNeXt(nn.Module):
    """Post-activation ResNeXt-``depth`` (``cardinality`` x ``base_width``d) for CIFAR, depth 9m + 2, as [34]
    builds its blocks (see the module docstring). ``skip=False`` removes every skip path (a plain twin)."""

    def __init__(
        self,
        depth: int,
        num_classes: int = 10,
        in_channels: int = 3,
        cardinality: int = 4,
        base_width: int = 8,
        skip: bool = True,
        out_widths: tuple[int, int, int] = (64, 128, 256),
        stem_width: int = 16,
    ) -> None:
        super().__init__()
        if depth < 11 or (depth - 2) % 9 != 0:
            raise ValueError(f"bottleneck ResNeXt depth must be 9m + 2 with m >= 1, got {depth}")
        m = (depth - 2) // 9
        self.depth = depth
        self.cardinality, self.base_width = cardinality, base_width
        self.conv1 = conv3x3(in_channels, stem_width)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=False)
        blocks: list[nn.Module] = []
        c_in = stem_width
        for stage, c_out in enumerate(out_widths):
            width = cardinality * base_width * 2**stage
            for i in range(m):
                stride = 2 if (stage > 0 and i == 0) else 1
                blocks.append(Bottleneck(c_in, width, c_out, stride, groups=cardinality, skip=skip))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)
        init_he(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(self.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(self.pool(out), 1))


def preact_resnext(
    depth: int,
    num_classes: int = 10,
    in_channels: int = 3,
    cardinality: int = 4,
    base_width: int = 8,
    skip: bool = True,
) -> PreActResNet:
    """Pre-act ResNeXt-``depth`` (``cardinality`` x ``base_width``d), outputs 64/128/256 as pre-act ResNet."""
    g = cardinality * base_width
    return PreActResNet(
        depth,
        num_classes=num_classes,
        in_channels=in_channels,
        skip=skip,
        widths=(g, 2 * g, 4 * g),
        out_widths=(64, 128, 256),
        groups=cardinality,
    )
