"""Layers shared by several architectures, and the markers that constraints, probes and tests look for.

Markers:

- :class:`ProjectedConv2d`: a convolution the Procrustes projection keeps norm-preserving (ProcResNet).
- :class:`Block`: the base of every residual or plain block. ``skip`` says whether some path from the block's
  input to its output bypasses the block's weights (``y = s(x) + F(x)``), ``transition`` whether the block
  changes the shape of its input (stride or channels). The gradient-norm probes of Zaeemzadeh et al. Fig. 3
  iterate ``model.modules()`` for ``Block`` instances.

Conventions every network of the registry follows (probes, constraints and the depth count rely on them):

- the blocks sit, in forward order, in an ``nn.Sequential`` named ``blocks`` (``model.blocks``);
- a projection on a skip path is an attribute named ``shortcut`` (not counted in the paper's depth);
- the classifier is ``model.fc`` (an ``nn.Linear``) after adaptive average pooling, so any input size works.
"""

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


class Block(nn.Module):
    """Marker base class of residual and plain blocks (see the module docstring)."""

    skip: bool = True
    transition: bool = False


def conv3x3(c_in: int, c_out: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias (a BN always follows or precedes it)."""
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution, no bias."""
    return nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)


class ZeroPadShortcut(nn.Module):
    """Parameter-free shortcut of He et al. 2016 ("option A"): subsample by ``stride``, zero-pad channels.

    ``s(x) = [x[:, :, ::stride, ::stride], 0]`` with ``c_out - c_in`` zero channels appended. Its Jacobian is
    a selection matrix: the skip path stays an identity on the channels it carries.
    """

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        if c_out < c_in:
            raise ValueError(f"zero-padding shortcut cannot reduce channels ({c_in} -> {c_out})")
        self.pad = c_out - c_in
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad:
            x = nn.functional.pad(x, (0, 0, 0, 0, 0, self.pad))
        return x


def init_he(model: nn.Module) -> None:
    """He (fan-out) normal init for convolutions, BN gamma = 1 and beta = 0, PyTorch default for FC."""
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
            if mod.bias is not None:
                nn.init.zeros_(mod.bias)
        elif isinstance(mod, nn.BatchNorm2d):
            nn.init.ones_(mod.weight)
            nn.init.zeros_(mod.bias)


_KINDS = {"conv": (nn.Conv1d, nn.Conv2d, nn.Conv3d), "linear": (nn.Linear,)}
INITS = ("he", "orthogonal")


def weight_layers(model: nn.Module, layers: str = "conv+linear") -> list[tuple[str, nn.Module]]:
    """Modules whose ``weight`` a weight constraint or init acts on: ``layers`` is "conv", "linear" or
    "conv+linear"; in ``named_modules`` order."""
    kinds: tuple[type, ...] = ()
    for part in layers.split("+"):
        if part not in _KINDS:
            raise ValueError(f"layers must combine 'conv' and 'linear' with '+', got {layers!r}")
        kinds += _KINDS[part]
    return [(n, m) for n, m in model.named_modules() if isinstance(m, kinds) and m.weight is not None]


def bn_layers(model: nn.Module) -> list[tuple[str, nn.modules.batchnorm._BatchNorm]]:
    """Affine batch-norm layers (1d/2d/3d) of ``model``, in ``named_modules`` order: what BBN bounds and the
    ``bn_gamma`` probe reads."""
    return [
        (n, m)
        for n, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None
    ]


@torch.no_grad()
def init_orthogonal(model: nn.Module, layers: str = "conv+linear") -> None:
    """Orthogonal init of every conv and linear weight (Jia et al. Sec. 6 and Algorithm 1, line 1).

    Each weight, as the matrix ``N_out x (N_in k_h k_w)``, gets ``torch.nn.init.orthogonal_``: when
    ``N_out <= N_in k_h k_w`` (square or wide) its rows are orthonormal (``W W^T = I``), otherwise (tall) its
    columns are (``W^T W = I``); either way every singular value is 1. Biases and BN parameters keep the
    network's own init. Draws from torch's global generator, layer by layer in ``named_modules`` order.
    """
    for _, m in weight_layers(model, layers):
        nn.init.orthogonal_(m.weight)


def apply_init(model: nn.Module, init: str) -> None:
    """The recipe's ``init``: ``he`` keeps the network's own initialisation (:func:`init_he` for the registry's
    networks); ``orthogonal`` then re-initialises every conv and linear weight (:func:`init_orthogonal`)."""
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
    if init == "orthogonal":
        init_orthogonal(model)


class PreActClassifier:
    """Mixin for pre-activation networks: the final BN-ReLU, global average pooling and the classifier ``fc``.

    ``logits = fc(pool(ReLU(BN(x))))``; adaptive pooling makes any input size work. The layers stay direct
    attributes (``bn``, ``relu``, ``pool``, ``fc``) so state-dict names are those of the papers' code.
    """

    def _init_classifier(self, channels: int, num_classes: int) -> None:
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def classify(self, out: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.relu(self.bn(out))), 1))
