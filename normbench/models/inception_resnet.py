"""Inception-ResNet-v2 (Szegedy et al. 2017, Figs. 3, 5, 7, 15-19), as used by Jia et al. 2017 (Table 4).

Layout (299x299 input; at least 75 px, the valid convolutions and poolings of the stem need it):

    stem (Fig. 3 as in the reference TF-slim model): conv3x3/2 32 - conv3x3 32 - conv3x3 64 - maxpool3x3/2 -
         conv1x1 80 - conv3x3 192 - maxpool3x3/2                                            (35x35x192)
    Mixed-5b (inception-A like, -> 320)
    10 x Block35  (Inception-ResNet-A, Fig. 16):  y = ReLU(x + 0.17 * W(concat(branches)))
    Mixed-6a (reduction-A, Fig. 7, k/l/m/n = 256/256/384/384, -> 1088)
    20 x Block17  (Inception-ResNet-B, Fig. 17):  y = ReLU(x + 0.10 * W(...))
    Mixed-7a (reduction-B, Fig. 18, -> 2080)
    9 x Block8    (Inception-ResNet-C, Fig. 19):  y = ReLU(x + 0.20 * W(...));  1 more without the ReLU
    conv1x1 1536 - global average pool - fully connected

Every convolution of a branch is Conv-BN(eps 1e-3)-ReLU without bias; the 1x1 "W" that maps the concatenated
branches back to the trunk width has a bias and no BN. The residual scaling factors are the reference ones.

Jia et al. use "the preactivation version of Inception-ResNet [25]" without defining it (Szegedy et al. have
no pre-activation variant). We build the reference post-activation network and record this as a deviation.

Depth: no paper states one; ``longest_path()`` counts the weight layers on the longest input-to-output path
(stem 5, Mixed-5b 3, 10 x 4, Mixed-6a 3, 20 x 4, Mixed-7a 3, 10 x 4, conv 1, fc 1) = 176.
"""

from __future__ import annotations

import torch
from torch import nn

from normbench.models.layers import Block


class ConvBN(nn.Sequential):
    """Conv (no bias) - BN(eps=1e-3) - ReLU."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, eps=1e-3),
            nn.ReLU(inplace=False),
        )


class _Mixed(Block):
    """Concatenation of parallel branches: a transition (no skip path), ``path_depth`` its longest branch."""

    skip = False
    transition = True
    path_depth = 3

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches], 1)


def mixed_5b() -> _Mixed:
    """35x35x192 -> 35x35x320 (96 + 64 + 96 + 64)."""
    return _Mixed(
        ConvBN(192, 96, 1),
        nn.Sequential(ConvBN(192, 48, 1), ConvBN(48, 64, 5, padding=2)),
        nn.Sequential(ConvBN(192, 64, 1), ConvBN(64, 96, 3, padding=1), ConvBN(96, 96, 3, padding=1)),
        nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), ConvBN(192, 64, 1)),
    )


def mixed_6a() -> _Mixed:
    """Reduction-A: 35x35x320 -> 17x17x1088 (384 + 384 + 320)."""
    return _Mixed(
        ConvBN(320, 384, 3, stride=2),
        nn.Sequential(ConvBN(320, 256, 1), ConvBN(256, 256, 3, padding=1), ConvBN(256, 384, 3, stride=2)),
        nn.MaxPool2d(3, stride=2),
    )


def mixed_7a() -> _Mixed:
    """Reduction-B: 17x17x1088 -> 8x8x2080 (384 + 288 + 320 + 1088)."""
    return _Mixed(
        nn.Sequential(ConvBN(1088, 256, 1), ConvBN(256, 384, 3, stride=2)),
        nn.Sequential(ConvBN(1088, 256, 1), ConvBN(256, 288, 3, stride=2)),
        nn.Sequential(ConvBN(1088, 256, 1), ConvBN(256, 288, 3, padding=1), ConvBN(288, 320, 3, stride=2)),
        nn.MaxPool2d(3, stride=2),
    )


class _ResidualInception(Block):
    """y = act(x + scale * up(concat(branches(x)))), ``up`` a 1x1 conv with bias back to the trunk width."""

    path_depth = 4

    def __init__(self, width: int, branches: list[nn.Module], cat: int, scale: float, relu: bool) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.up = nn.Conv2d(cat, width, 1, bias=True)
        self.scale = scale
        self.act = nn.ReLU(inplace=False) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.up(torch.cat([b(x) for b in self.branches], 1))
        return self.act(x + self.scale * out)


def block35(scale: float = 0.17) -> _ResidualInception:
    """Inception-ResNet-A on 35x35x320: branches 32 | 32-32 | 32-48-64."""
    return _ResidualInception(
        320,
        [
            ConvBN(320, 32, 1),
            nn.Sequential(ConvBN(320, 32, 1), ConvBN(32, 32, 3, padding=1)),
            nn.Sequential(ConvBN(320, 32, 1), ConvBN(32, 48, 3, padding=1), ConvBN(48, 64, 3, padding=1)),
        ],
        128,
        scale,
        relu=True,
    )


def block17(scale: float = 0.10) -> _ResidualInception:
    """Inception-ResNet-B on 17x17x1088: branches 192 | 128-160(1x7)-192(7x1)."""
    return _ResidualInception(
        1088,
        [
            ConvBN(1088, 192, 1),
            nn.Sequential(
                ConvBN(1088, 128, 1),
                ConvBN(128, 160, (1, 7), padding=(0, 3)),
                ConvBN(160, 192, (7, 1), padding=(3, 0)),
            ),
        ],
        384,
        scale,
        relu=True,
    )


def block8(scale: float = 0.20, relu: bool = True) -> _ResidualInception:
    """Inception-ResNet-C on 8x8x2080: branches 192 | 192-224(1x3)-256(3x1)."""
    return _ResidualInception(
        2080,
        [
            ConvBN(2080, 192, 1),
            nn.Sequential(
                ConvBN(2080, 192, 1),
                ConvBN(192, 224, (1, 3), padding=(0, 1)),
                ConvBN(224, 256, (3, 1), padding=(1, 0)),
            ),
        ],
        448,
        scale,
        relu=relu,
    )


class InceptionResNetV2(nn.Module):
    """Inception-ResNet-v2 (see the module docstring)."""

    stem_depth = 5

    def __init__(self, num_classes: int = 1000, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            ConvBN(in_channels, 32, 3, stride=2),
            ConvBN(32, 32, 3),
            ConvBN(32, 64, 3, padding=1),
            nn.MaxPool2d(3, stride=2),
            ConvBN(64, 80, 1),
            ConvBN(80, 192, 3),
            nn.MaxPool2d(3, stride=2),
        )
        self.blocks = nn.Sequential(
            mixed_5b(),
            *[block35() for _ in range(10)],
            mixed_6a(),
            *[block17() for _ in range(20)],
            mixed_7a(),
            *[block8() for _ in range(9)],
            block8(relu=False),
        )
        self.head_conv = ConvBN(2080, 1536, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(1536, num_classes)
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
                if mod.bias is not None:
                    nn.init.zeros_(mod.bias)

    def longest_path(self) -> int:
        """Weight layers on the longest input-to-output path (stem + blocks + head conv + classifier)."""
        return self.stem_depth + sum(b.path_depth for b in self.blocks) + 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head_conv(self.blocks(self.stem(x)))
        return self.fc(torch.flatten(self.pool(out), 1))
