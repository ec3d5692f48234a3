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
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from normbench.models.fig2net import fig2_network
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

    ProcResNet: the paper's Fig. 3 also plots the stem ``conv*`` (3 -> 64 channels, "the first transition
    block") as a block; it is not in ``model.blocks``, so add it: ``blocks=[model.stem, *mods]``.
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
    :func:`find_blocks`. Returns one record per block in forward order::

        {"index", "name", "transition", "declared_transition", "in_shape", "out_shape",
         "grad_norm_in", "grad_norm_out", "ratio", "ratio_per_sample_mean"}

    ``transition`` is true when the block changes the shape of the activation (channels or spatial size:
    the "blocks that change the dimension" of Fig. 3); ``declared_transition`` is the block's own
    ``transition`` attribute (the registry's ``Block`` marker), ``None`` when it has none.
    ``in_shape``/``out_shape`` omit the batch size.
    A zero input gradient gives ``inf`` (``nan`` when the output gradient is zero too).
    The model's buffers, mode, RNG state and parameter gradients are left untouched.
    """
    mods = find_blocks(model) if blocks is None else resolve_modules(model, blocks)
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


# ----------------------------------------------------------------------------------- Fig. 2 of Zaeemzadeh

Batch = tuple[torch.Tensor, torch.Tensor]
Project = Callable[[nn.Module], None]


def _epoch_batches(batches: Iterable[Batch] | Callable[[], Iterable[Batch]]) -> Iterable[Batch]:
    return batches() if callable(batches) else batches


def fig2_ratio(
    c: int,
    d: int,
    train_batches: Sequence[Batch] | Callable[[], Iterable[Batch]],
    probe_batch: Batch,
    project: Project | None = None,
    epochs: int = 10,
    project_every: int = 1,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    seed: int = 0,
    relu: bool = True,
    num_classes: int = 10,
    loss_fn: LossFn | None = None,
    method: Any = None,
    test_batches: Callable[[], Iterable[Batch]] | None = None,
) -> dict[str, Any]:
    """One cell of Zaeemzadeh et al.'s Fig. 2: train the 3-layer network, then measure its middle layer.

    Builds :func:`fig2_network` ``(c, d)`` with ``torch.manual_seed(seed)``, trains it with SGD (the paper's
    Sec. 4 recipe: lr 0.1, momentum 0.9, weight decay 1e-4) for ``epochs`` passes over ``train_batches``
    (a re-iterable sequence, or a callable returning one epoch's batches), then returns the gradient-norm
    ratio ``||dE/dx_{l+1}|| / ||dE/dx_l||`` of the Conv-ReLU layer ``block`` on ``probe_batch`` (see
    :func:`block_grad_norm_ratios`). The paper reports it "at 10th training epoch", averaged over 10 runs
    (:func:`fig2_grid`).

    ``project(net)``, when given, enforces the constraint in place: it is called once before training
    (after one no-grad forward pass, so each ``ProjectedConv2d`` has recorded its input grid) and after
    every ``project_every``-th optimizer step. Wire the Procrustes method here, e.g.
    ``project=lambda net: method.after_step(net, 0)``.

    ``method``, when given, is a training method of :mod:`normbench.methods` run at its hooks as the trainer
    runs it (attach after one no-grad forward pass, ``loss_term``, ``after_step``, ``after_epoch``; the
    optimizer's weight decay stays on only if ``method.uses_weight_decay``): this is how the Fig. 2 study
    (:mod:`normbench.studies.fig2`) applies the ``procrustes`` method of a configuration. ``test_batches`` (a callable
    returning the test batches) adds the test loss and error after training.

    Returns ``{"c", "d", "projected", "steps", "ratio", "grad_norm_in", "grad_norm_out", "in_shape",
    "out_shape", "ratio_per_sample_mean", "train_loss", "train_error"}`` (the last epoch's running means; error
    in %), plus ``"test_loss", "test_error"`` with ``test_batches``.
    """
    if loss_fn is None:
        loss_fn = nn.functional.cross_entropy
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = fig2_network(c, d, in_channels=probe_batch[0].shape[1], num_classes=num_classes, relu=relu)
        dev = probe_batch[0].device
        net.to(dev)
        if project is not None or method is not None:
            with torch.no_grad():
                net(probe_batch[0])  # each ProjectedConv2d records its input grid
        if method is not None:
            method.attach(net)
        if project is not None:
            project(net)
        decay = weight_decay if method is None or method.uses_weight_decay else 0.0
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, weight_decay=decay)
        steps = 0
        net.train()
        loss_sum, wrong, seen = 0.0, 0, 0
        for epoch in range(1, epochs + 1):
            loss_sum, wrong, seen = 0.0, 0, 0
            for xb, yb in _epoch_batches(train_batches):
                xb, yb = xb.to(dev), yb.to(dev)
                logits = net(xb)
                loss = loss_fn(logits, yb)
                extra = method.loss_term(net) if method is not None else None
                opt.zero_grad(set_to_none=True)
                (loss if extra is None else loss + extra).backward()
                opt.step()
                if method is not None:
                    method.after_step(net, steps)
                steps += 1
                if project is not None and steps % project_every == 0:
                    project(net)
                loss_sum += loss.item() * len(yb)
                wrong += int((logits.argmax(1) != yb).sum())
                seen += len(yb)
            if method is not None:
                method.after_epoch(net, epoch)
        rec = block_grad_norm_ratios(net, probe_batch, blocks=[net.block], loss_fn=loss_fn)[0]
        out = {
            "c": c,
            "d": d,
            "projected": project is not None or (method is not None and method.name != "none"),
            "steps": steps,
            **{k: rec[k] for k in ("ratio", "grad_norm_in", "grad_norm_out", "ratio_per_sample_mean")},
            "in_shape": rec["in_shape"],
            "out_shape": rec["out_shape"],
            "train_loss": loss_sum / seen if seen else math.nan,
            "train_error": 100.0 * wrong / seen if seen else math.nan,
        }
        if test_batches is not None:
            out.update(_evaluate(net, test_batches(), loss_fn))
    return out


@torch.no_grad()
def _evaluate(net: nn.Module, batches: Iterable[Batch], loss_fn: LossFn) -> dict[str, float]:
    """Mean loss and error (%) over ``batches`` in eval mode; the net is put back in training mode."""
    net.eval()
    loss_sum, wrong, seen = 0.0, 0, 0
    for xb, yb in batches:
        logits = net(xb)
        loss_sum += float(loss_fn(logits, yb)) * len(yb)
        wrong += int((logits.argmax(1) != yb).sum())
        seen += len(yb)
    net.train()
    return {"test_loss": loss_sum / seen, "test_error": 100.0 * wrong / seen}


def fig2_grid(
    cs: Sequence[int],
    ds: Sequence[int],
    train_batches: Sequence[Batch] | Callable[[], Iterable[Batch]],
    probe_batch: Batch,
    runs: int = 10,
    project: Project | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """The ratio grid of Zaeemzadeh et al., Fig. 2 (one panel): ``mean[i][j]`` is the mean over ``runs``
    seeds (0..runs-1) of :func:`fig2_ratio` for ``c = cs[i]``, ``d = ds[j]``; ``ratios[i][j]`` lists the
    runs. Call it twice, with and without ``project``, for panels (a) and (b). Extra keyword arguments go
    to :func:`fig2_ratio`."""
    ratios = [
        [
            [
                fig2_ratio(c, d, train_batches, probe_batch, project=project, seed=s, **kwargs)["ratio"]
                for s in range(runs)
            ]
            for d in ds
        ]
        for c in cs
    ]
    mean = [[sum(cell) / len(cell) if cell else math.nan for cell in row] for row in ratios]
    return {
        "c": list(cs),
        "d": list(ds),
        "runs": runs,
        "projected": project is not None,
        "mean": mean,
        "ratios": ratios,
    }
