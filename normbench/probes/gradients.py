"""Gradient probes: per-block gradient-norm ratios (Zaeemzadeh et al., Figs. 2-3) and second moments of the
back-propagated error per layer (Xie et al., Figs. 3-4).

Conventions
-----------
Block index ``l`` counts from the input to the output; ``x_l`` is the input of block ``l`` and
``x_{l+1}`` its output. Zaeemzadeh et al. define the plotted quantity as "the ratio of gradient norm at
output to gradient norm at input, i.e., ||dE/dx_{l+1}||_2 to ||dE/dx_l||_2" (Figs. 2 and 3, Sec. 4.1), so

    ratio_l = ||dE/dx_{l+1}||_2 / ||dE/dx_l||_2 .

A block that scales its input by ``s`` (``x_{l+1} = s x_l``) back-propagates ``dE/dx_l = s dE/dx_{l+1}``
and has ratio ``1/s``: a ratio above 1 means the gradient shrinks on its way down (vanishing), below 1 that
it grows (exploding). Norm-preserving blocks (identity, orthogonal) have ratio 1 (Theorems 1-2).

Xie et al. index the second moment ``q^l`` of the backward error by conv layer ``l`` (input to output) and
define the modulation factor as "the square root of ratio of second order moment of higher layer, say
q^{l+1}, to that, say q^l, of lower layer" (Sec. 4); the probe reports ``q^{l+1}/q^l``, Fig. 3's
``q^1/q^L`` ("output error signals (input errors of first convolution layer)" over "input error signals
(input errors of last convolution layer)") and Fig. 4's ``q^l/q^L`` ("ratio of second-order moment of
current layer to highest layer").
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from normbench.probes._common import (
    LayerSpec,
    LossFn,
    capture_gradients,
    resolve_modules,
    safe_ratio,
)

# ------------------------------------------------------------------------------------------------ blocks


def _block_marker() -> type[nn.Module] | None:
    try:
        from normbench.models.layers import Block
    except ImportError:  # pragma: no cover - older model code without the marker
        return None
    return Block


def find_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The residual (or plain) blocks of ``model``, as ``(name, module)`` pairs.

    1. The children of ``model.blocks`` (an ``nn.Sequential`` or ``nn.ModuleList``): the registry's
       convention (:mod:`normbench.models.layers`), followed by the pre-act models of
       :mod:`normbench.models.preact`.
    2. Otherwise the outermost instances of the marker class ``normbench.models.layers.Block``.
    3. Otherwise ``ValueError``: pass the block modules explicitly to :func:`block_grad_norm_ratios`.

    ProcResNet's stem ``conv*`` (3 -> 64 channels) is not in ``model.blocks``: :func:`gradient_blocks` adds it
    for the gradient-norm probe.
    """
    blocks = getattr(model, "blocks", None)
    if isinstance(blocks, nn.Sequential | nn.ModuleList):
        return [(f"blocks.{name}", child) for name, child in blocks.named_children()]
    marker = _block_marker()
    if marker is not None:
        found: list[tuple[str, nn.Module]] = []
        for name, m in model.named_modules():
            if isinstance(m, marker) and not any(name.startswith(f"{outer}.") for outer, _ in found):
                found.append((name, m))
        if found:
            return found
    raise ValueError(
        f"{type(model).__name__} has no `blocks` nn.Sequential/nn.ModuleList and no Block modules; pass the "
        "block modules explicitly (blocks=[...])"
    )


def gradient_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The blocks whose gradient-norm ratio Zaeemzadeh Fig. 3 plots: :func:`find_blocks`, preceded by the
    model's ``stem`` when it is a projected convolution (ProcResNet's ``conv*``, Fig. 1d: "the first
    transition block, where the 3 RGB channels are transformed into 64 channels", Fig. 3 caption)."""
    from normbench.models.layers import ProjectedConv2d

    stem = getattr(model, "stem", None)
    return ([("stem", stem)] if isinstance(stem, ProjectedConv2d) else []) + find_blocks(model)


def block_grad_norm_ratios(
    model: nn.Module,
    batch: Any,
    blocks: LayerSpec = None,
    loss_fn: LossFn | None = None,
) -> list[dict[str, Any]]:
    """Gradient-norm ratio of every block (Zaeemzadeh et al., Fig. 3; Sec. 4.1).

    For block ``l`` with input ``x_l`` and output ``x_{l+1}``, on one mini-batch ``(x, y)`` with the mean
    cross-entropy loss ``E`` (or ``loss_fn``)::

        ratio_l = ||dE/dx_{l+1}||_2 / ||dE/dx_l||_2        (gradient norm at output over that at input)

    where each norm is the Euclidean norm of the whole mini-batch gradient tensor (batch x C x H x W; the
    1/batch factor of the mean loss cancels in the ratio). ``ratio_per_sample_mean`` is the mean over the
    samples of the same ratio taken per sample. A block scaling its input by ``s`` has ratio ``1/s``.

    ``blocks``: names or modules of ``model`` (each maps one tensor to one tensor); ``None`` uses
    :func:`gradient_blocks` (the blocks, ProcResNet's projected stem first). Returns one record per block in
    forward order::

        {"index", "name", "transition", "declared_transition", "in_shape", "out_shape",
         "grad_norm_in", "grad_norm_out", "ratio", "ratio_per_sample_mean"}

    ``transition`` is true when the block changes the shape of the activation (channels or spatial size:
    the "blocks that change the dimension" of Fig. 3); ``declared_transition`` is the block's own
    ``transition`` attribute (the registry's ``Block`` marker), ``None`` when it has none.
    ``in_shape``/``out_shape`` omit the batch size.
    A zero input gradient gives ``inf`` (``nan`` when the output gradient is zero too).
    The model's buffers, mode, RNG state and parameter gradients are left untouched.
    """
    mods = gradient_blocks(model) if blocks is None else resolve_modules(model, blocks)
    recs = capture_gradients(model, batch, mods, loss_fn=loss_fn)
    out = []
    for i, r in enumerate(recs):
        g_in, g_out = r["grad_in"].double(), r["grad_out"].double()
        n_in, n_out = float(g_in.norm()), float(g_out.norm())
        per_in = g_in.reshape(g_in.shape[0], -1).norm(dim=1).tolist()
        per_out = g_out.reshape(g_out.shape[0], -1).norm(dim=1).tolist()
        per = [safe_ratio(o, n) for o, n in zip(per_out, per_in, strict=True)]
        declared = getattr(r["module"], "transition", None)
        out.append(
            {
                "index": i,
                "name": r["name"],
                "transition": r["in_shape"] != r["out_shape"],
                "declared_transition": declared if isinstance(declared, bool) else None,
                "in_shape": r["in_shape"][1:],
                "out_shape": r["out_shape"][1:],
                "grad_norm_in": n_in,
                "grad_norm_out": n_out,
                "ratio": safe_ratio(n_out, n_in),
                "ratio_per_sample_mean": sum(per) / len(per) if per else math.nan,
            }
        )
    return out


# ---------------------------------------------------------------------------------------- backward moments


def backward_error_moments(
    model: nn.Module,
    batch: Any,
    layers: LayerSpec = None,
    loss_fn: LossFn | None = None,
    where: str = "output",
) -> dict[str, Any]:
    """Second moments of the back-propagated error per conv layer and their ratios (Xie et al., Figs. 3-4).

    For conv layer ``l`` (forward order, ``l = 1..L``) with output ``y_l``, the backward error is
    ``delta_l = dE/dy_l`` and its second moment is the mean over all its entries (batch, channels, pixels)::

        q^l = mean(delta_l ** 2)

    (``where="input"`` uses ``dE/dx_l`` at the layer's input instead.) Returned (all lists in forward order)::

        {"layers": [...], "q": [q^1..q^L],
         "ratio_consecutive": [q^{l+1}/q^l for l = 1..L-1],   # Xie Sec. 4: rho_l = sqrt of these
         "ratio_to_top": [q^l/q^L for l = 1..L],              # Fig. 4
         "ratio_bottom_to_top": q^1/q^L}                      # Fig. 3

    ``layers=None`` takes every ``nn.Conv2d`` ("convolutional layer in our case") except those on a skip
    path (a module path containing ``shortcut``, the registry's name for skip projections), so that
    consecutive layers are consecutive on the main path; pass ``layers`` to choose others.
    """
    if where not in ("output", "input"):
        raise ValueError(f"where must be 'output' or 'input', got {where!r}")
    mods = resolve_modules(model, layers, kinds=(nn.Conv2d,))
    if layers is None:
        mods = [(name, m) for name, m in mods if "shortcut" not in name.split(".")]
    recs = capture_gradients(
        model, batch, mods, loss_fn=loss_fn, inputs=where == "input", outputs=where == "output"
    )
    key = "grad_out" if where == "output" else "grad_in"
    q = [float(r[key].double().pow(2).mean()) for r in recs]
    top = q[-1] if q else math.nan
    return {
        "where": where,
        "layers": [r["name"] for r in recs],
        "q": q,
        "ratio_consecutive": [safe_ratio(q[i + 1], q[i]) for i in range(len(q) - 1)],
        "ratio_to_top": [safe_ratio(v, top) for v in q],
        "ratio_bottom_to_top": safe_ratio(q[0], top) if q else math.nan,
    }
