"""Shared plumbing of the probes: layer selection, side-effect-free forward/backward passes, JSON safety.

Every probe must be cheap and must leave the training run exactly as it found it, because the trainer calls
probes in the middle of a run and the suite is a reproducibility benchmark. :func:`probe_context` therefore

* keeps the model's ``train``/``eval`` mode (probes measure the network as it trains, so BN uses batch
  statistics when the model is in training mode),
* restores every buffer afterwards (BN running means/variances and ``num_batches_tracked`` would otherwise
  be updated by the probe's forward pass),
* restores the torch random-number generators (dropout or any stochastic layer would otherwise consume
  random numbers and change the rest of the run).

Gradients are taken with :func:`torch.autograd.grad` with respect to captured activations only, so the
parameters' ``.grad`` fields are never touched.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

LayerSpec = Sequence[str | nn.Module] | None
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

WEIGHT_LAYERS: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)


def default_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The training loss of every paper: mean cross-entropy over the batch."""
    return F.cross_entropy(output, target)


# ----------------------------------------------------------------------------------------------- layers


def module_names(model: nn.Module) -> dict[int, str]:
    """``id(module) -> qualified name`` for every submodule (the model itself is ``""``)."""
    return {id(m): name for name, m in model.named_modules()}


def resolve_modules(
    model: nn.Module,
    layers: LayerSpec = None,
    kinds: tuple[type[nn.Module], ...] = WEIGHT_LAYERS,
) -> list[tuple[str, nn.Module]]:
    """Turn a layer specification into ``(name, module)`` pairs.

    ``layers=None`` selects every submodule that is an instance of ``kinds``, in ``named_modules`` order
    (definition order). Otherwise ``layers`` lists qualified names (as in ``model.named_modules()``) or
    module objects of ``model``; an unknown name or a module that is not part of ``model`` raises
    ``KeyError``.
    """
    if layers is None:
        return [(name, m) for name, m in model.named_modules() if isinstance(m, kinds)]
    by_name = dict(model.named_modules())
    names = module_names(model)
    out: list[tuple[str, nn.Module]] = []
    for spec in layers:
        if isinstance(spec, str):
            if spec not in by_name:
                raise KeyError(f"model has no submodule named {spec!r}")
            out.append((spec, by_name[spec]))
        elif isinstance(spec, nn.Module):
            if id(spec) not in names:
                raise KeyError(f"module {type(spec).__name__} is not a submodule of the model")
            out.append((names[id(spec)], spec))
        else:
            raise TypeError(f"layer spec must be a name or an nn.Module, got {type(spec).__name__}")
    return out


def pick_spread(items: Sequence[Any], k: int) -> list[Any]:
    """``k`` evenly spread items, always including the first and the last (for ``k >= 2``).

    ``k = 2`` gives the "early and later layers" of Oyedotun et al. (Figs. 5-10); ``k = 3`` the "lower,
    middle and higher layers" of Jia et al. (Fig. 1). Fewer than ``k`` items returns them all.
    """
    n = len(items)
    if k <= 0 or n == 0:
        return []
    if n <= k:
        return list(items)
    if k == 1:
        return [items[0]]
    idx = sorted({math.floor(i * (n - 1) / (k - 1) + 0.5) for i in range(k)})
    return [items[i] for i in idx]


def weight_matrix(module: nn.Module) -> torch.Tensor:
    """The weight as the matrix the papers use: ``c_out x (c_in/groups * kh * kw)`` for a conv (Jia et al.,
    footnote 2; Xie et al. Eq. 3 uses its transpose), ``out x in`` for a linear layer. Detached float64."""
    w = module.weight.detach()
    return w.reshape(w.shape[0], -1).to(torch.float64)


# ------------------------------------------------------------------------------------------- side effects


@contextlib.contextmanager
def probe_context(model: nn.Module) -> Iterator[None]:
    """Run a probe without side effects on the model's buffers, mode, or the global RNG state."""
    was_training = model.training
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    tensors = [*model.parameters(), *model.buffers()]
    devices = sorted({t.device.index or 0 for t in tensors if t.device.type == "cuda"})
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        with torch.no_grad():
            for name, b in model.named_buffers():
                if name in buffers:
                    b.copy_(buffers[name])
        model.train(was_training)


def model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def unpack_batch(model: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(x, y)`` or ``x`` -> tensors on the model's device (``y`` may be ``None`` for forward-only probes)."""
    if isinstance(batch, torch.Tensor):
        x, y = batch, None
    else:
        x, y = batch[0], batch[1] if len(batch) > 1 else None
    dev = model_device(model)
    x = x.to(dev)
    if y is not None:
        y = y.to(dev)
    return x, y


def capture_gradients(
    model: nn.Module,
    batch: Any,
    modules: Sequence[tuple[str, nn.Module]],
    loss_fn: LossFn | None = None,
    inputs: bool = True,
    outputs: bool = True,
) -> list[dict[str, Any]]:
    """One forward/backward pass capturing dE/d(input) and dE/d(output) of each module.

    Returns one record per module **in forward execution order** (a module that never runs is omitted;
    one that runs twice raises ``RuntimeError``), with keys ``name``, ``module``, ``in_shape``,
    ``out_shape``, ``grad_in`` and ``grad_out`` (detached tensors, ``None`` when not requested).

    The input batch is made to require grad, so that every activation is part of the autograd graph, and the
    gradients are computed with :func:`torch.autograd.grad` (parameter ``.grad`` fields are untouched).
    Each module must take one tensor and return one tensor. In-place operations that later modify a
    captured tensor would silently change the gradient it stands for; they are detected (tensor version
    counters) and raise ``RuntimeError``.
    """
    loss_fn = loss_fn or default_loss
    x, y = unpack_batch(model, batch)
    if y is None:
        raise ValueError("gradient probes need a batch (x, y)")
    with probe_context(model):
        loss, captured = _forward_capturing(model, x, y, modules, loss_fn)
        wanted, slot = _wanted(captured, inputs, outputs)
        grads = torch.autograd.grad(loss, wanted, allow_unused=True) if wanted else ()

        def grad_of(t: torch.Tensor) -> torch.Tensor:
            g = grads[slot[id(t)]]
            return torch.zeros_like(t).detach() if g is None else g.detach()

        return [
            {
                "name": r["name"],
                "module": r["module"],
                "in_shape": list(r["in"].shape),
                "out_shape": list(r["out"].shape),
                "grad_in": grad_of(r["in"]) if inputs else None,
                "grad_out": grad_of(r["out"]) if outputs else None,
            }
            for r in captured
        ]


def _forward_capturing(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    modules: Sequence[tuple[str, nn.Module]],
    loss_fn: LossFn,
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """The loss of one forward pass from an input that requires grad, and each module's input and output
    (with their version counters) in forward execution order; a module that runs twice raises."""
    records: dict[int, dict[str, Any]] = {}
    order: list[int] = []

    def make_hook(name: str, mod: nn.Module) -> Callable[..., None]:
        def hook(m: nn.Module, args: tuple[Any, ...], out: Any) -> None:
            if id(m) in records:
                raise RuntimeError(f"module {name!r} ran twice in one forward pass; probe it separately")
            if len(args) != 1 or not isinstance(args[0], torch.Tensor) or not isinstance(out, torch.Tensor):
                raise TypeError(f"module {name!r} must map one tensor to one tensor")
            records[id(m)] = {"name": name, "module": mod, "in": args[0], "out": out,
                              "in_version": args[0]._version, "out_version": out._version}  # fmt: skip
            order.append(id(m))

        return hook

    handles = []
    try:
        for name, mod in modules:
            handles.append(mod.register_forward_hook(make_hook(name, mod)))
        xg = x.detach().clone().requires_grad_(True)
        loss = loss_fn(model(xg), y)
    finally:
        for h in handles:
            h.remove()
    return loss, [records[key] for key in order]


def _wanted(
    captured: list[dict[str, Any]], inputs: bool, outputs: bool
) -> tuple[list[torch.Tensor], dict[int, int]]:
    """The distinct tensors to differentiate (each once) and each one's slot; refuses a captured tensor
    modified in place after its module ran, or one that does not require grad."""
    wanted: list[torch.Tensor] = []
    slot: dict[int, int] = {}

    def want(t: torch.Tensor) -> None:
        if id(t) not in slot:
            if not t.requires_grad:
                raise RuntimeError("a captured activation does not require grad (detached inside the model?)")
            slot[id(t)] = len(wanted)
            wanted.append(t)

    for r in captured:
        if r["in"]._version != r["in_version"] or r["out"]._version != r["out_version"]:
            raise RuntimeError(
                f"the input or output of {r['name']!r} was modified in place after the module ran "
                "(e.g. ReLU(inplace=True)); gradient probes need out-of-place operations there"
            )
        if inputs:
            want(r["in"])
        if outputs:
            want(r["out"])
    return wanted, slot


def capture_activations(
    model: nn.Module,
    batch: Any,
    modules: Sequence[tuple[str, nn.Module]],
    reduce: Callable[[torch.Tensor], Any] | None = None,
) -> list[tuple[str, Any]]:
    """One no-grad forward pass; returns ``(name, value)`` per module in forward execution order.

    ``value`` is ``reduce(output)`` computed inside the hook, so large activations need not be kept
    (default: a detached copy of the output). A module that runs twice is reported at its first call.
    """
    x, _ = unpack_batch(model, batch)
    reduce_fn: Callable[[torch.Tensor], Any] = reduce or (lambda t: t.clone())
    seen: dict[int, tuple[str, Any]] = {}
    order: list[int] = []
    handles = []

    def make_hook(name: str) -> Callable[..., None]:
        def hook(m: nn.Module, args: tuple[Any, ...], out: Any) -> None:
            if id(m) in seen:
                return
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"module {name!r} must return one tensor")
            seen[id(m)] = (name, reduce_fn(out.detach()))
            order.append(id(m))

        return hook

    with probe_context(model), torch.no_grad():
        try:
            for name, mod in modules:
                handles.append(mod.register_forward_hook(make_hook(name)))
            model(x)
        finally:
            for h in handles:
                h.remove()
    return [seen[k] for k in order]


# ------------------------------------------------------------------------------------------------- numbers


def safe_ratio(num: float, den: float) -> float:
    """``num / den`` with the limits spelled out: ``x/0 = inf`` for ``x > 0``, ``0/0 = nan``."""
    if math.isnan(num) or math.isnan(den):
        return math.nan
    if den == 0.0:
        return math.inf if num > 0 else math.nan
    return num / den


def floats(t: torch.Tensor) -> list[float]:
    """A 1-D tensor as a list of Python floats."""
    return [float(v) for v in t.detach().reshape(-1).cpu().tolist()]
