"""The 3-layer network of Zaeemzadeh et al.'s Fig. 2 (Sec. 3): the probe of the projection's norm preservation.

"The network consists of 3 convolutional layers, followed by ReLU non-linearity. [...] the second layer is a
3x3 convolution with c input channels and d output channels. The first and third layers are 1x1 convolutions to
change the number of channels and to match the size of the input and output layers."

Layout (stable names)::

    stem     = 1x1 conv (in_channels -> c), ReLU
    blocks.0 = 3x3 conv (c -> d, padding 1), ReLU       # the Conv-ReLU layer whose ratio Fig. 2 plots
    head     = 1x1 conv (d -> num_classes), global average pool, flatten  -> logits

``blocks`` follows the registry's convention (the probes' ``find_blocks``), and ``net.block`` is that one
Conv-ReLU block. Our choices where the paper is silent: no bias; no ReLU after the last conv (it produces the
logits); global average pooling to reach the classifier output; He (fan-out) normal init as in Sec. 4. All three
convolutions are :class:`~normbench.models.layers.ProjectedConv2d` ("we perform the projection on the
convolution layers"), so the ``procrustes`` method finds them. The registry's ``fig2_probe`` is the c = d = 16
cell; the Fig. 2 study (:mod:`normbench.studies.fig2`) builds every cell of its grid with :func:`fig2_network`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from normbench.models.layers import Block, ProjectedConv2d


class ConvReLUBlock(nn.Sequential, Block):
    """3x3 convolution (``c -> d``, padding 1, no bias) then ReLU: a plain block (no skip path)."""

    skip = False

    def __init__(self, c: int, d: int, relu: bool = True) -> None:
        super().__init__(
            ProjectedConv2d(c, d, 3, padding=1, bias=False), nn.ReLU() if relu else nn.Identity()
        )
        self.transition = c != d


class Fig2Net(nn.Module):
    """Zaeemzadeh et al.'s Fig. 2 network: 1x1 conv + ReLU, a 3x3 Conv-ReLU block ``c -> d``, 1x1 conv to the
    classes and global average pooling (see the module docstring)."""

    def __init__(
        self, c: int, d: int, in_channels: int = 3, num_classes: int = 10, relu: bool = True
    ) -> None:
        super().__init__()
        act: Callable[[], nn.Module] = nn.ReLU if relu else nn.Identity
        self.stem = nn.Sequential(ProjectedConv2d(in_channels, c, 1, bias=False), act())
        self.blocks = nn.Sequential(ConvReLUBlock(c, d, relu))
        self.head = nn.Sequential(
            ProjectedConv2d(d, num_classes, 1, bias=False), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @property
    def block(self) -> ConvReLUBlock:
        """The 3x3 Conv-ReLU layer of Fig. 2 (``blocks[0]``)."""
        return self.blocks[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def fig2_network(c: int, d: int, in_channels: int = 3, num_classes: int = 10, relu: bool = True) -> Fig2Net:
    """Build :class:`Fig2Net` for the grid cell ``(c, d)``; ``relu=False`` drops the ReLUs (used by the
    known-answer tests: an orthogonal middle layer then has ratio exactly 1)."""
    return Fig2Net(c, d, in_channels=in_channels, num_classes=num_classes, relu=relu)
