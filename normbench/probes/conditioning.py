"""Condition numbers of weights (via HOSVD) and of hidden representations (Oyedotun et al., Figs. 11-13).

Oyedotun et al. define the condition number as ``kappa(W) = sigma_max(W) / sigma_min(W)`` (Eq. 11) and, for
CNNs, "for obtaining the singular values of model tensors [...] adopt the Higher Order SVD (HOSVD)"
(Sec. VI.B). The hidden representations of layer ``l`` on a batch of ``N`` inputs form
``H(x)^l = [h(x)_1^l, ..., h(x)_N^l] in R^{n x N}`` (Definition 2); its condition number is Fig. 13's,
where "layers with missing condition numbers have infinite values".

Rank deficiency and ``inf``
---------------------------
A singular value that is zero *to the precision of the data* makes the matrix singular and ``kappa = inf``.
The data (weights, activations) are float32 tensors even though the SVD runs in float64: storing a matrix
``A`` with ``k = min(m, n)`` singular values in a format with unit round-off ``eps`` perturbs it by at most
``eps * ||A||_F <= eps * sqrt(k) * sigma_max`` in spectral norm, so by Weyl's inequality any singular value
below

    tol = sqrt(k) * eps(dtype of the data) * sigma_max

is indistinguishable from zero. Such a matrix (and an all-zero one) gets ``kappa = inf``; a non-finite entry
gives ``nan``. ``rtol`` overrides ``sqrt(k) * eps``. JSON output (:func:`normbench.probes.record_probes`)
writes ``inf`` as the string ``"inf"``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from normbench.probes._common import (
    WEIGHT_LAYERS,
    LayerSpec,
    capture_activations,
    floats,
    resolve_modules,
)


def default_rtol(k: int, dtype: torch.dtype = torch.float32) -> float:
    """``sqrt(k) * eps(dtype)``: relative size below which a singular value counts as zero (module doc)."""
    return math.sqrt(max(k, 1)) * torch.finfo(dtype).eps


def condition_number(
    singular_values: list[float], rtol: float | None = None, dtype: torch.dtype = torch.float32
) -> float:
    """``sigma_max / sigma_min`` (Oyedotun et al., Eq. 11), ``inf`` when the smallest value is below
    ``rtol * sigma_max`` (``rtol`` defaults to :func:`default_rtol` of the number of values) or all are zero,
    ``nan`` for an empty list or a non-finite value."""
    if not singular_values or any(not math.isfinite(s) for s in singular_values):
        return math.nan
    smax, smin = max(singular_values), min(singular_values)
    tol = (default_rtol(len(singular_values), dtype) if rtol is None else rtol) * smax
    if smax <= 0.0 or smin <= tol:
        return math.inf
    return smax / smin


def numerical_rank(
    singular_values: list[float], rtol: float | None = None, dtype: torch.dtype = torch.float32
) -> int:
    """Number of singular values above ``rtol * sigma_max`` (same tolerance as :func:`condition_number`)."""
    if not singular_values or any(not math.isfinite(s) for s in singular_values):
        return 0
    smax = max(singular_values)
    tol = (default_rtol(len(singular_values), dtype) if rtol is None else rtol) * smax
    return sum(1 for s in singular_values if s > tol) if smax > 0 else 0


# --------------------------------------------------------------------------------------------------- HOSVD


def unfold(t: torch.Tensor, mode: int) -> torch.Tensor:
    """Mode-``n`` unfolding: the ``I_n x prod(I_m, m != n)`` matrix whose columns are the mode-n fibres."""
    return t.movedim(mode, 0).reshape(t.shape[mode], -1)


def hosvd(t: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Higher-order SVD (De Lathauwer, De Moor, Vandewalle 2000): ``t = S x_1 U_1 x_2 U_2 ... x_N U_N``.

    ``U_n`` holds the left singular vectors of the mode-n unfolding (``I_n x r_n``, ``r_n = min(I_n,
    prod of the other sizes)``); the core is ``S = t x_1 U_1^T ... x_N U_N^T``. Computed in float64. The
    norms of the core's mode-n slices are the mode-n singular values (see :func:`hosvd_singular_values`).
    """
    t = t.detach().to(torch.float64)
    factors = [torch.linalg.svd(unfold(t, n), full_matrices=False)[0] for n in range(t.dim())]
    core = t
    for n, u in enumerate(factors):
        # mode-n product with U_n^T: contract mode n of the core with the rows of U_n
        core = torch.tensordot(core, u, dims=([n], [0])).movedim(-1, n)
    return core, factors


def hosvd_singular_values(t: torch.Tensor) -> list[list[float]]:
    """The mode-n singular values of a tensor, one descending list per mode ``n = 1..N``.

    In the HOSVD these are the Frobenius norms of the core tensor's slices along mode ``n``, which equal the
    singular values of the mode-n unfolding; we list the ``min(I_n, prod of the other sizes)`` values that
    the unfolding has (a mode whose size exceeds the product of the others has structural zeros beyond
    that, which we do not list: otherwise every 1x1 expansion conv ``c -> 4c`` would be ``inf``).
    For a conv kernel ``c_out x c_in x kh x kw`` mode 1 is the SVB/Jia matrix ``c_out x c_in*kh*kw``;
    for a 2-D weight both modes give the ordinary singular values.
    """
    t = t.detach().to(torch.float64)
    if not bool(torch.isfinite(t).all()):
        return [[math.nan] * min(t.shape[n], t.numel() // max(t.shape[n], 1)) for n in range(t.dim())]
    return [floats(torch.linalg.svdvals(unfold(t, n))) for n in range(t.dim())]


def weight_condition_numbers(
    model: nn.Module,
    layers: LayerSpec = None,
    rtol: float | None = None,
    include_values: bool = False,
) -> list[dict[str, Any]]:
    """Weight condition numbers via HOSVD (Oyedotun et al., Figs. 11-12).

    For each conv kernel (4-D) or linear weight (2-D) ``W``: the mode-n singular values
    (:func:`hosvd_singular_values`) give one condition number per mode,
    ``mode_kappa[n] = sigma_max^(n) / sigma_min^(n)`` (Eq. 11, ``inf`` below the rank tolerance), and the
    layer's condition number is the worst mode, ``kappa = max_n mode_kappa[n]``. ``mode_kappa[0]`` is the
    condition number of the ``c_out x c_in*kh*kw`` matrix. (The paper does not say how it turns the per-mode
    values into one number per layer: the maximum is our choice; for 1x1 kernels and linear layers every
    choice gives the matrix condition number.)

    ``layers=None`` takes every ``nn.Conv2d`` and ``nn.Linear``. Records:
    ``{"name", "kind", "shape", "mode_kappa", "kappa"}`` plus ``"mode_singular_values"`` when
    ``include_values``. An orthogonal linear layer or 1x1 conv has ``kappa = 1``.
    """
    out = []
    for name, mod in resolve_modules(model, layers, kinds=WEIGHT_LAYERS):
        w = mod.weight.detach()
        svs = hosvd_singular_values(w)
        kappas = [condition_number(s, rtol=rtol, dtype=w.dtype) for s in svs]
        kappa = math.nan if any(math.isnan(k) for k in kappas) else max(kappas)
        rec: dict[str, Any] = {
            "name": name,
            "kind": "conv" if w.dim() > 2 else "linear",
            "shape": list(w.shape),
            "mode_kappa": kappas,
            "kappa": kappa,
        }
        if include_values:
            rec["mode_singular_values"] = svs
        out.append(rec)
    return out


# ---------------------------------------------------------------------------------- hidden representations


def representation_singular_values(h: torch.Tensor) -> list[float]:
    """Singular values of the batch matrix ``H`` (``N`` samples x ``n = prod(features)``), descending.

    Computed through the smaller Gram matrix in float64 (``H H^T`` if ``N <= n``): its eigenvalues are the
    squared singular values, accurate to about ``1e-8 sigma_max``, far below the rank tolerance of float32
    (or lower-precision) data, and far cheaper than an SVD of a ``128 x 65536`` activation matrix.
    Float64 data use a direct SVD.
    """
    mat = h.detach().reshape(h.shape[0], -1).to(torch.float64)
    k = min(mat.shape)
    if not bool(torch.isfinite(mat).all()):
        return [math.nan] * k
    if h.dtype == torch.float64:  # the Gram route cannot resolve float64 round-off: use the SVD
        return floats(torch.linalg.svdvals(mat))
    gram = mat @ mat.T if mat.shape[0] <= mat.shape[1] else mat.T @ mat
    ev = torch.linalg.eigvalsh(gram).clamp_min(0.0).flip(0)
    return floats(ev.sqrt())


def representation_condition(h: torch.Tensor, rtol: float | None = None) -> dict[str, Any]:
    """Condition number of one layer's hidden representations ``H(x)^l`` (Oyedotun et al., Definition 2,
    Eq. 11): ``{"shape", "n_samples", "n_features", "rank", "sigma_max", "sigma_min", "kappa"}``.

    ``H`` is used as it is (no centring), with each sample's activation flattened to ``n = C*H*W``
    features. It has ``min(N, n)`` singular values, so with ``N < n`` the value depends on the batch
    size: compare runs at the same batch size. Rank-deficient -> ``kappa = inf``.
    """
    sv = representation_singular_values(h)
    return {
        "shape": list(h.shape[1:]),
        "n_samples": int(h.shape[0]),
        "n_features": int(h[0].numel()) if h.shape[0] else 0,
        "rank": numerical_rank(sv, rtol=rtol, dtype=h.dtype),
        "sigma_max": sv[0] if sv else math.nan,
        "sigma_min": sv[-1] if sv else math.nan,
        "kappa": condition_number(sv, rtol=rtol, dtype=h.dtype),
    }


def hidden_condition_numbers(
    model: nn.Module,
    batch: Any,
    layers: LayerSpec = None,
    rtol: float | None = None,
) -> list[dict[str, Any]]:
    """Condition number of the hidden representations at each layer (Oyedotun et al., Fig. 13).

    One forward pass (no grad, in the model's current mode, buffers and RNG restored) on ``batch``
    (``x`` or ``(x, y)``); for every selected module the output batch ``H`` gives
    :func:`representation_condition`. ``layers=None`` takes the outputs of every ``nn.Conv2d`` and
    ``nn.Linear`` (one value per weight layer, the layer index of Fig. 13); pass block modules or any other
    modules to probe elsewhere. Records (forward order): ``{"index", "name", ...representation_condition}``.
    """
    mods = resolve_modules(model, layers, kinds=WEIGHT_LAYERS)
    vals = capture_activations(model, batch, mods, reduce=lambda t: representation_condition(t, rtol=rtol))
    return [{"index": i, "name": name, **rec} for i, (name, rec) in enumerate(vals)]
