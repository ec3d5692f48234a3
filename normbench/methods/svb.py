"""Singular Value Bounding (Jia, Tao, Gao, Xu, CVPR 2017, Sec. 3, Algorithm 1).

The maths
---------
Every weight matrix ``W`` of the network is kept near the Stiefel manifold (problem (1): ``W^T W = I`` or
``W W^T = I``) by projected SGD: every ``T_svb`` iterations,

    W = U S V^T,     s_i <- min(max(s_i, 1 / (1 + eps)), 1 + eps),     W <- U S V^T     (Algorithm 1, lines 6-10)

A convolution kernel ``N_out x N_in x N_h x N_w`` is bounded as the matrix ``N_out x (N_in N_h N_w)`` (footnote 2);
a fully connected layer as its ``N_out x N_in`` weight. The paper applies SVB "after every epoch" (Sec. 6) with
``eps = 0.5``, and initialises ``W^T W = I`` or ``W W^T = I`` (Algorithm 1, line 1: orthogonal init; here the
recipe key ``init: orthogonal``, which config/paper.yaml sets for every Jia et al. experiment).

The clip is the Frobenius-nearest matrix with singular values in the band (the singular vectors are kept), so
applying it twice changes nothing. We compute it in float64 and write back in the weight's dtype.

Official code (kui-jia/svb, Torch7): ``main.lua`` applies SVB (and BBN) after each epoch's test *except after
the last epoch*, so its final model is not bounded; ``cnnTrain.lua`` also has a per-iteration variant
(``svBIter``) guarded by ``nEpochIter - iKey >= 100``, which with the released defaults (391 iterations per epoch,
``svBIter = 391``) never fires. We apply it after every ``every_epochs``-th epoch (or every ``every_steps``
optimizer steps) and once more in ``finalize``, so the saved model is bounded.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from normbench.methods import register_method
from normbench.methods.base import BoundingMethod
from normbench.models.layers import init_orthogonal, weight_layers

__all__ = ["SingularValueBounding", "bound_singular_values", "singular_values", "weight_layers"]


def as_matrix(weight: torch.Tensor) -> torch.Tensor:
    """The ``N_out x (N_in k_h k_w)`` matrix of a kernel (a view for contiguous weights)."""
    return weight.reshape(weight.shape[0], -1)


def bound_singular_values(weight: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """``U clip(S, lo, hi) V^T`` of the reshaped weight, in the weight's shape and dtype."""
    m = as_matrix(weight.detach()).double()
    u, s, vh = torch.linalg.svd(m, full_matrices=False)
    out = (u * s.clamp(lo, hi)) @ vh
    return out.reshape(weight.shape).to(weight.dtype)


def bound_singular_values_batched(weights: list[torch.Tensor], lo: float, hi: float) -> list[torch.Tensor]:
    """:func:`bound_singular_values` of several weights, batched: the reshaped matrices of equal shape (and
    device) are stacked and go through one batched SVD, on the weights' device. Returns new tensors in the
    weights' shapes and dtypes, in order; the same values as one call per weight (float64 throughout)."""
    out: list[torch.Tensor | None] = [None] * len(weights)
    groups: dict[tuple, list[int]] = {}
    for i, w in enumerate(weights):
        groups.setdefault((tuple(as_matrix(w).shape), w.device), []).append(i)
    for idx in groups.values():
        m = torch.stack([as_matrix(weights[i].detach()).double() for i in idx])
        u, s, vh = torch.linalg.svd(m, full_matrices=False)
        bounded = (u * s.clamp(lo, hi).unsqueeze(-2)) @ vh
        for i, b in zip(idx, bounded, strict=True):
            out[i] = b.reshape(weights[i].shape).to(weights[i].dtype)
    return out  # type: ignore[return-value]


def singular_values(weight: torch.Tensor) -> torch.Tensor:
    """Singular values (float64) of the reshaped weight."""
    return torch.linalg.svdvals(as_matrix(weight.detach()).double())


@register_method
class SingularValueBounding(BoundingMethod):
    """SVB: clip the singular values of every conv (reshaped) and FC weight into ``[1/(1+eps), 1+eps]``.

    Hook point: **per epoch** (``after_epoch``, every ``every_epochs`` epochs; the paper's "after every epoch")
    or, with ``every_steps``, **after the optimizer step** every that many steps (the paper's ``T_svb``).
    The orthogonal init of Algorithm 1 line 1 is the recipe's ``init: orthogonal``
    (:func:`normbench.models.layers.init_orthogonal`, applied when the network is built, to every run of the
    experiment, SGD baselines included, as Jia et al. Sec. 6 do): ``attach`` does not re-initialise unless
    the option ``init="orthogonal"`` asks for it explicitly (then only the SVB runs start orthogonal).

    Options: eps (0.5), every_epochs (1), every_steps (None), init ("none" | "orthogonal"),
    layers ("conv+linear" | "conv" | "linear").
    ``finalize`` bounds once more and records ``param``, ``kind`` "svb", ``bounds`` and the achieved ``min_sv``
    and ``max_sv``.
    """

    name = "svb"

    def __init__(
        self,
        eps: float = 0.5,
        every_epochs: int = 1,
        every_steps: int | None = None,
        init: str = "none",
        layers: str = "conv+linear",
    ) -> None:
        if init not in ("orthogonal", "none"):
            raise ValueError(f"svb: init must be 'orthogonal' or 'none', got {init!r}")
        weight_layers(nn.Module(), layers)  # validates the layer selection
        self._init_schedule(eps, every_epochs, every_steps)
        self.init, self.layers = init, layers

    def attach(self, model: nn.Module) -> None:
        if self.init == "orthogonal":
            init_orthogonal(model, self.layers)

    @torch.no_grad()
    def apply(self, model: nn.Module) -> None:
        """Bound every selected weight once (Algorithm 1, lines 5-11), batched over layers of equal shape."""
        layers = weight_layers(model, self.layers)
        new = bound_singular_values_batched([m.weight for _, m in layers], *self.bounds)
        for (_, m), w in zip(layers, new, strict=True):
            m.weight.copy_(w)

    def finalize(self, model: nn.Module) -> list[dict[str, Any]]:
        self.apply(model)
        lo, hi = self.bounds
        records = []
        for name, m in weight_layers(model, self.layers):
            sv = singular_values(m.weight)
            records.append(
                {
                    "param": f"{name}.weight",
                    "kind": "svb",
                    "bounds": [lo, hi],
                    "min_sv": sv.min().item(),
                    "max_sv": sv.max().item(),
                }
            )
        return records
