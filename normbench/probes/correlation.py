"""Correlation among the weight vectors (filters) of a layer (Xie et al., Sec. 5.2, Eq. 8, Fig. 2).

Xie et al. compute "average correlation among different channels over all the layers" with the cosine::

    s_bar = 1/N sum_{l=1}^{D} sum_{i=1}^{f_out} sum_{j=i}^{f_out} D_cos(v_i^(l), v_j^(l))      (Eq. 8)

"where v_i^(l) in R^{f_in} denotes ith kernel of W_l in lth layer and N is total computation count", with
``f_in = W x H x C`` (a filter flattened over its kernel window and input channels) and ``f_out = M`` the
number of filters. Conventions we follow and the one place we deviate:

* **cosine, signed** -- not Pearson (no centring) and not absolute: the caption of Fig. 2 says "we allow
  negative correlations". ``D_cos`` is named a "distance" but is used as a similarity (orthonormal filters
  give about 6e-3), so ``D_cos(x, y) = <x, y> / (||x|| ||y||)``. We also report the mean absolute cosine.
* **pairs i < j** -- Eq. 8's inner sum starts at ``j = i``, which would add ``f_out`` self-similarities of
  exactly 1 per layer (at least 16/136 ~ 0.12 for a 16-filter layer), incompatible with the reported
  ~6e-3 for orthonormal filters; we read it as ``j > i`` (distinct pairs only).
* **pooled over layers** -- ``N`` is the total number of pairs over all layers, so ``mean`` weights each
  layer by its number of pairs (per-layer means are reported as well).
* Layers: the ``D`` layers of Eq. 3, i.e. every ``nn.Conv2d`` and ``nn.Linear`` unless ``layers`` is
  given. A zero filter has no direction: pairs involving one are skipped and counted (``zero_filters``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from normbench.probes._common import WEIGHT_LAYERS, LayerSpec, resolve_modules, weight_matrix


def filter_cosines(weight: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Cosines ``<v_i, v_j> / (||v_i|| ||v_j||)`` of all pairs ``i < j`` of the filters (rows of the
    ``f_out x f_in`` matrix) of one weight, skipping zero or non-finite filters. Returns
    ``(cosines, number of skipped filters)``; the cosines are a 1-D float64 tensor."""
    mat = weight.detach().reshape(weight.shape[0], -1).to(torch.float64)
    norms = mat.norm(dim=1)
    ok = torch.isfinite(mat).all(dim=1) & (norms > 0)
    unit = mat[ok] / norms[ok, None]
    gram = unit @ unit.T
    iu = torch.triu_indices(gram.shape[0], gram.shape[1], offset=1)
    return gram[iu[0], iu[1]].clamp(-1.0, 1.0), int((~ok).sum())


def weight_correlation(model: nn.Module, layers: LayerSpec = None) -> dict[str, Any]:
    """Mean cosine correlation among the filters of each layer and over all layers (Xie et al., Eq. 8).

    Returns::

        {"mean": s_bar (signed, pooled over all pairs of all layers), "mean_abs": pooled mean |cos|,
         "pairs": N, "layers": [{"name", "filters", "f_in", "pairs", "mean", "mean_abs", "max_abs",
                                 "zero_filters"}, ...]}

    Two identical filters have correlation 1, opposite ones -1, orthogonal ones 0. A layer with fewer than
    two usable filters has no pairs and ``nan`` means.
    """
    recs = []
    total, total_abs, total_pairs = 0.0, 0.0, 0
    for name, mod in resolve_modules(model, layers, kinds=WEIGHT_LAYERS):
        cos, skipped = filter_cosines(mod.weight)
        n = int(cos.numel())
        s, sa = float(cos.sum()), float(cos.abs().sum())
        total, total_abs, total_pairs = total + s, total_abs + sa, total_pairs + n
        recs.append(
            {
                "name": name,
                "filters": int(mod.weight.shape[0]),
                "f_in": int(weight_matrix(mod).shape[1]),
                "pairs": n,
                "mean": s / n if n else math.nan,
                "mean_abs": sa / n if n else math.nan,
                "max_abs": float(cos.abs().max()) if n else math.nan,
                "zero_filters": skipped,
            }
        )
    return {
        "mean": total / total_pairs if total_pairs else math.nan,
        "mean_abs": total_abs / total_pairs if total_pairs else math.nan,
        "pairs": total_pairs,
        "layers": recs,
    }
