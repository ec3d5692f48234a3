"""Procrustes ResNet (Zaeemzadeh et al. 2020, Sec. 3-4, Fig. 1d; official code ``models/procresnet.py``).

ProcResNet moves the dimension change out of the skip path. Layout of ProcResNet-n (bottleneck widths
16/32/64, block outputs 64/128/256; ``m`` blocks per stage, all stride 1 with identity skips):

    stem    conv*3x3(in -> 64)                         (ProjectedConv2d; no BN/ReLU after it)
    stage1  m x pre-act bottleneck 64 -> 16 -> 64      (identity skips only)
    trans1  conv*1x1(64 -> 128, stride 2)              (ProjectedConv2d, applied to the residual stream)
    stage2  m x pre-act bottleneck 128 -> 32 -> 128
    trans2  conv*1x1(128 -> 256, stride 2)             (ProjectedConv2d)
    stage3  m x pre-act bottleneck 256 -> 64 -> 256
    BN - ReLU - global average pool - fully connected

``conv*`` is a convolution the Procrustes projection (Sec. 3, Eq. 8, applied by :mod:`normbench.methods`)
keeps norm-preserving; the type :class:`~normbench.models.layers.ProjectedConv2d` marks the three of them.
A transition block of Fig. 1d is ``conv*`` followed by an ordinary identity-skip block:
:class:`ProcTransition` holds the pair, so ``model.blocks`` has the same 3m blocks as the ResNet it comes
from, two of them transitions (what the gradient-norm probes of Fig. 3 expect). The stem is
``model.stem``; the two transition convolutions are ``model.blocks[m].proj`` and ``model.blocks[2m].proj``,
also listed by ``model.projected_convs()``.

Depth (Sec. 4): the ResNet has 3L + 2 weight layers for L = 3m blocks. ProcResNet replaces the 3 projection
shortcuts by the stem conv (widened to 64) plus 2 transition convs, i.e. "3 extra convolution layers ... we
can use the first convolution layer of the original ResNet design to match the dimensions and only add two
extra layers": depth 3L + 4 = 9m + 4. ResNet-164 (m = 18) becomes ProcResNet-166, ResNet-1001 (m = 111)
ProcResNet-1003, m = 30 gives ProcResNet-274 (Fig. 5, the official ``ProcResNet274``). The rows "20" and "83"
of Table 1 and Fig. 3, labelled by the depth of the ResNet they modify, are ProcResNet-22 and -85 here.

Initialisation as the official code: He normal for the blocks; the projected convs use the linear gain
(Chainer ``HeNormal(scale=sqrt(1/2))``: std = sqrt(1/fan_in)). Unused ``bn_trans_*`` layers that the
official code defines but never calls (384 parameters) are left out.
"""

from __future__ import annotations

import torch
from torch import nn

from normbench.models.layers import Block, PreActClassifier, ProjectedConv2d, init_he
from normbench.models.preact import PreActBottleneck


class ProcTransition(Block):
    """Norm-preserving transition block (Fig. 1d): y = B(conv*(x)), B an identity-skip pre-act bottleneck.

    ``proj`` is the strided 1x1 :class:`ProjectedConv2d` that changes the dimension; the skip of ``B`` is an
    identity, so the only non-identity map on the path from x to y outside the residual branch is ``proj``.
    """

    skip = True
    transition = True

    def __init__(self, proj: ProjectedConv2d, block: PreActBottleneck) -> None:
        super().__init__()
        self.proj = proj
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(self.proj(x))


class ProcResNet(PreActClassifier, nn.Module):
    """ProcResNet of depth 9m + 4 (pre-activation, or EraseReLU blocks with ``erase_relu=True``)."""

    def __init__(
        self,
        depth: int,
        num_classes: int = 10,
        in_channels: int = 3,
        erase_relu: bool = False,
        widths: tuple[int, int, int] = (16, 32, 64),
    ) -> None:
        super().__init__()
        if depth < 13 or (depth - 4) % 9 != 0:
            raise ValueError(f"ProcResNet depth must be 9m + 4 with m >= 1, got {depth}")
        m = (depth - 4) // 9
        outs = [4 * w for w in widths]
        self.depth = depth
        self.stem = ProjectedConv2d(in_channels, outs[0], 3, padding=1, bias=False)
        blocks: list[nn.Module] = []
        for stage, (width, c_out) in enumerate(zip(widths, outs, strict=True)):
            for i in range(m):
                block = PreActBottleneck(c_out, width, 1, skip=True, erase_relu=erase_relu)
                if stage > 0 and i == 0:
                    proj = ProjectedConv2d(outs[stage - 1], c_out, 1, stride=2, bias=False)
                    block = ProcTransition(proj, block)
                blocks.append(block)
        self.blocks = nn.Sequential(*blocks)
        self._init_classifier(outs[-1], num_classes)
        init_he(self)
        for conv in self.projected_convs():
            nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="linear")

    def projected_convs(self) -> list[ProjectedConv2d]:
        """The stem and the two transition convolutions, in forward order."""
        return [m for m in self.modules() if isinstance(m, ProjectedConv2d)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.blocks(self.stem(x)))
