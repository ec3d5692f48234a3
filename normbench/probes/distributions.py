"""Distributions of activations and weights at chosen layers (Oyedotun et al., Figs. 5-10 and A1-A6: "units'
activations (outputs)" and "units' weights" of the first layer and of layer 160 of 164-layer networks).

Every summary is a JSON-friendly dict of the finite values: count, min, max, range (the paper quotes
ranges: "the range of units' activations is 1.7 million"), mean, std, quantiles and a histogram (counts
and bin edges), plus the number of non-finite values, which a diverging plain network produces.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from normbench.models.layers import bn_layers
from normbench.probes._common import (
    WEIGHT_LAYERS,
    LayerSpec,
    capture_activations,
    floats,
    pick_spread,
    probe_context,
    resolve_modules,
    unpack_batch,
)

DEFAULT_QUANTILES: tuple[float, ...] = (0.0, 0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999, 1.0)


def histogram(
    values: Sequence[float] | torch.Tensor,
    bins: int = 50,
    value_range: tuple[float, float] | None = None,
    normalize: bool = True,
) -> dict[str, Any]:
    """Histogram of the finite ``values``: ``{"counts", "edges", "normalized", "n", "nonfinite"}``.

    ``bins`` equal-width bins over ``value_range`` (default: min..max of the finite values; a degenerate
    range is widened by 0.5 on each side); ``edges`` has ``bins + 1`` entries and the last bin includes its
    right edge. Values outside ``value_range`` are not counted. ``normalize=True`` divides the counts by the
    number of finite values (fractions that sum to 1 when the range covers the data, as in Jia et al.'s
    "normalized singular value histograms"); ``normalize=False`` gives integer counts.
    """
    if isinstance(values, torch.Tensor):
        t = values.detach().reshape(-1).to(torch.float64)
    else:
        t = torch.tensor(list(values), dtype=torch.float64)
    finite = t[torch.isfinite(t)]
    n_nonfinite = int(t.numel() - finite.numel())
    if value_range is None:
        lo, hi = (float(finite.min()), float(finite.max())) if finite.numel() else (0.0, 1.0)
    else:
        lo, hi = float(value_range[0]), float(value_range[1])
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    counts = torch.histc(finite, bins=bins, min=lo, max=hi) if finite.numel() else torch.zeros(bins)
    edges = torch.linspace(lo, hi, bins + 1, dtype=torch.float64)
    total = int(finite.numel())
    c: list[float] | list[int]
    if normalize:
        c = [float(v) / total if total else 0.0 for v in counts.tolist()]
    else:
        c = [int(round(v)) for v in counts.tolist()]
    return {
        "counts": c,
        "edges": floats(edges),
        "normalized": normalize,
        "n": total,
        "nonfinite": n_nonfinite,
    }


def _quantiles(sorted_vals: torch.Tensor, qs: Sequence[float]) -> list[float]:
    """Linear-interpolation quantiles (numpy's default) of an ascending 1-D tensor."""
    n = sorted_vals.numel()
    if n == 0:
        return [math.nan] * len(qs)
    out = []
    for q in qs:
        pos = q * (n - 1)
        lo = int(math.floor(pos))
        hi = min(lo + 1, n - 1)
        frac = pos - lo
        out.append(float(sorted_vals[lo]) * (1 - frac) + float(sorted_vals[hi]) * frac)
    return out


def summarize(
    values: torch.Tensor,
    bins: int = 50,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    value_range: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Summary of all entries of a tensor::

        {"numel", "nonfinite", "min", "max", "range", "mean", "std",
         "quantiles": {"q": [...], "values": [...]}, "histogram": histogram(...)}

    over the finite entries (float64 arithmetic; ``std`` is the population standard deviation). With no
    finite entry the statistics are ``nan``. The histogram is not normalized (integer counts).
    """
    t = values.detach().reshape(-1).to(torch.float64)
    finite = t[torch.isfinite(t)]
    n = int(finite.numel())
    if n:
        srt = finite.sort().values
        mn, mx = float(srt[0]), float(srt[-1])
        mean = float(finite.mean())
        std = float(finite.std(correction=0))
    else:
        srt = finite
        mn = mx = mean = std = math.nan
    return {
        "numel": int(t.numel()),
        "nonfinite": int(t.numel()) - n,
        "min": mn,
        "max": mx,
        "range": mx - mn,
        "mean": mean,
        "std": std,
        "quantiles": {"q": [float(q) for q in quantiles], "values": _quantiles(srt, quantiles)},
        "histogram": histogram(finite, bins=bins, value_range=value_range, normalize=False),
    }


def _default_layers(model: nn.Module, k: int) -> list[str]:
    return [name for name, _ in pick_spread(resolve_modules(model, None, kinds=WEIGHT_LAYERS), k)]


def _layer_index(model: nn.Module) -> dict[str, int]:
    return {name: i for i, (name, _) in enumerate(resolve_modules(model, None, kinds=WEIGHT_LAYERS))}


def activation_distributions(
    model: nn.Module,
    batch: Any,
    layers: LayerSpec = None,
    k: int = 2,
    bins: int = 50,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
) -> list[dict[str, Any]]:
    """Distribution of the outputs ("units' activations") of chosen layers on one batch (Oyedotun et al.,
    Figs. 5, 7, 9, A1, A3, A5).

    ``layers=None`` picks ``k`` weight layers (``nn.Conv2d``/``nn.Linear``) evenly spread from the first to
    the last (``k = 2``: the "early and later layers"). One no-grad forward pass in the model's current mode
    (buffers and RNG restored). Records (forward order): ``{"name", "layer_index", "shape", **summarize}``,
    where ``layer_index`` counts weight layers from 0 in definition order (``None`` for other modules).
    """
    spec = _default_layers(model, k) if layers is None else layers
    mods = resolve_modules(model, spec)
    index = _layer_index(model)
    vals = capture_activations(
        model,
        batch,
        mods,
        reduce=lambda t: {"shape": list(t.shape[1:]), **summarize(t, bins=bins, quantiles=quantiles)},
    )
    return [{"name": name, "layer_index": index.get(name), **rec} for name, rec in vals]


def weight_distributions(
    model: nn.Module,
    layers: LayerSpec = None,
    k: int = 2,
    bins: int = 50,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
) -> list[dict[str, Any]]:
    """Distribution of the weights ("units' weights") of chosen layers (Oyedotun et al., Figs. 6, 8, 10, A2,
    A4, A6). Layer selection as in :func:`activation_distributions`; records (definition order):
    ``{"name", "layer_index", "shape", **summarize}`` of the layer's ``weight``."""
    spec = _default_layers(model, k) if layers is None else layers
    index = _layer_index(model)
    out = []
    for name, mod in resolve_modules(model, spec):
        w = mod.weight.detach()
        out.append(
            {
                "name": name,
                "layer_index": index.get(name),
                "shape": list(w.shape),
                **summarize(w, bins=bins, quantiles=quantiles),
            }
        )
    return out


def relu_nonzero(model: nn.Module, batch: Any) -> dict[str, Any]:
    """Xie et al. 2017, footnote 3: "placing ReLU after BN guarantees approximately 50% activations to be
    nonzero". One no-grad forward pass on ``batch`` in the model's current mode (buffers and RNG restored):
    over every call of every ``nn.ReLU`` module, the share (%) of its outputs that are > 0.

    Returns ``{"percent", "nonzero", "numel", "calls": [{"name", "percent"}]}`` (calls in execution order; a
    module applied twice appears twice). ``percent`` is NaN for a model without ``nn.ReLU`` modules (one using
    ``F.relu`` only): nothing was measured.
    """
    x, _ = unpack_batch(model, batch)
    calls: list[dict[str, Any]] = []
    totals = [0, 0]
    handles = []

    def make_hook(name: str):
        def hook(m: nn.Module, args: tuple[Any, ...], out: Any) -> None:
            nonzero, numel = int((out > 0).sum()), int(out.numel())
            totals[0] += nonzero
            totals[1] += numel
            calls.append({"name": name, "percent": 100.0 * nonzero / numel if numel else math.nan})

        return hook

    with probe_context(model), torch.no_grad():
        try:
            for name, mod in model.named_modules():
                if isinstance(mod, nn.ReLU):
                    handles.append(mod.register_forward_hook(make_hook(name)))
            model(x)
        finally:
            for h in handles:
                h.remove()
    percent = 100.0 * totals[0] / totals[1] if totals[1] else math.nan
    return {"percent": percent, "nonzero": totals[0], "numel": totals[1], "calls": calls}


def bn_gammas(model: nn.Module) -> list[dict[str, Any]]:
    """The scales gamma of every affine batch-norm layer (Jia et al. 2017, Sec. 5, after Algorithm 2: "we do
    not take the absolute values. This is because values of {gamma_i} are usually initialized as 1, and they
    are empirically observed to keep positive during the process of network training").

    Records (definition order): ``{"name", "n", "min", "max", "mean", "nonpositive"}`` over the layer's
    gammas, ``nonpositive`` the number of gammas <= 0. No batch: the parameters only.
    """
    out = []
    for name, mod in bn_layers(model):
        g = mod.weight.detach().double()
        out.append(
            {
                "name": name,
                "n": int(g.numel()),
                "min": float(g.min()),
                "max": float(g.max()),
                "mean": float(g.mean()),
                "nonpositive": int((g <= 0).sum()),
            }
        )
    return out
