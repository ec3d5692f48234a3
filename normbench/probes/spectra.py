"""Singular-value spectra of the weights (Jia et al., Fig. 1: "Normalized singular value histograms for weight
matrices", lower/middle/higher layers, SGD vs SVB).

Each conv kernel is read as the matrix SVB bounds: "we convert its kernel tensor of the size
N_out x N_in x N_h x N_w as a matrix of the size N_out x N_in N_h N_w" (Jia et al., footnote 2); a grouped
conv's stored kernel is ``c_out x (c_in/groups) x kh x kw`` and is reshaped the same way. A linear layer's
weight is its ``out x in`` matrix. Singular values are computed in float64 and listed in descending order.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from normbench.probes._common import LayerSpec, floats, pick_spread, resolve_modules, weight_matrix
from normbench.probes.distributions import histogram


def svdvals(mat: torch.Tensor) -> list[float]:
    """Singular values of a 2-D tensor in float64, descending; all ``nan`` if it has a non-finite entry."""
    mat = mat.detach().to(torch.float64)
    k = min(mat.shape)
    if not bool(torch.isfinite(mat).all()):
        return [math.nan] * k
    return floats(torch.linalg.svdvals(mat))


def weight_singular_values(model: nn.Module, layers: LayerSpec = None) -> list[dict[str, Any]]:
    """Singular values of every conv (as ``c_out x c_in*kh*kw``) and linear weight (Jia et al., Fig. 1).

    ``layers=None`` takes every ``nn.Conv2d`` and ``nn.Linear`` (definition order). Returns one record per
    layer: ``{"name", "kind": "conv"|"linear", "shape", "matrix_shape", "singular_values"}``. The SVB
    constraint holds when every value lies in ``[1/(1+eps), 1+eps]``.
    """
    out = []
    for name, mod in resolve_modules(model, layers):
        mat = weight_matrix(mod)
        out.append(
            {
                "name": name,
                "kind": "conv" if mod.weight.dim() > 2 else "linear",
                "shape": list(mod.weight.shape),
                "matrix_shape": list(mat.shape),
                "singular_values": svdvals(mat),
            }
        )
    return out


def singular_value_histograms(
    model: nn.Module,
    layers: LayerSpec = None,
    k: int = 3,
    bins: int = 50,
    value_range: tuple[float, float] | None = None,
    normalize: bool = True,
) -> list[dict[str, Any]]:
    """Jia et al., Fig. 1: normalized singular-value histograms of the lower, middle and higher layers.

    ``layers=None`` picks ``k`` layers evenly spread over the convolutions (first, middle, last for
    ``k = 3``); an explicit ``layers`` is used as given. Each record is the
    :func:`weight_singular_values` record plus ``"histogram"`` (see :func:`normbench.probes.distributions.histogram`). Pass a common
    ``value_range`` to compare runs (e.g. SGD vs SVB) on the same bins.
    """
    if layers is None:
        convs = resolve_modules(model, None, kinds=(nn.Conv2d,))
        layers = [name for name, _ in pick_spread(convs, k)]
    recs = weight_singular_values(model, layers)
    for r in recs:
        r["histogram"] = histogram(
            r["singular_values"], bins=bins, value_range=value_range, normalize=normalize
        )
    return recs
