"""Layers shared by several architectures, and the markers constraints look for."""

from __future__ import annotations

import torch
from torch import nn


class ProjectedConv2d(nn.Conv2d):
    """A convolution whose operator the Procrustes projection keeps norm-preserving (Zaeemzadeh et al. 2020).

    It is an ordinary ``nn.Conv2d``; the type marks it for :mod:`normbench.methods` (the stem and the stage
    transitions of ProcResNet). ``grid`` is the spatial size of its input, recorded on the first forward
    pass, which sets the FFT grid of the projection (32 for the CIFAR stem, 16 and 8 for the transitions).
    """

    grid: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.grid is None:
            self.grid = int(x.shape[-1])
        return super().forward(x)
