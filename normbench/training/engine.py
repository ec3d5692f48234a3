"""The training step as an object: the plain eager loop body, and a fast equivalent for GPUs.

One step computes, for a mini-batch ``(x, y)`` (already augmented and normalised on the device)::

    logits = model(x)                                    under bf16 autocast with precision "bf16"
    loss   = CE(logits, y);  total = loss + method.loss_term(model)
    total.backward(); optimizer.step(); method.after_step(model, step)

and adds ``loss * len(y)`` and the number of wrong top-1 predictions to the epoch's running totals (the
training loss and error of the epoch record). Both engines compute exactly this; they differ in how.

- :class:`EagerStep` (``engine.name: eager``, the default): the loop body of the original trainer. It reads
  the loss back after every step (``.item()``, a host-device synchronisation) and stops *before* the backward
  pass of the first step whose total loss is non-finite.
- :class:`FastStep` (``engine.name: fast``): the same maths, with

  * the running totals kept on the device (no per-step synchronisation); the first non-finite total of the
    epoch is recorded there too (its iteration and value). The host reads them every ``check_every`` steps
    and at the end of the epoch, so a diverged run stops at most ``check_every`` steps after the first
    non-finite loss: its ``diverged`` record carries that exact ``iteration`` and the ``window`` of iterations
    ``[first, last]`` checked when it was found. The steps in between were applied, so a diverged run's saved
    model is the model at detection (no table uses a diverged run's model; its errors are NaN);
  * on a CUDA device, when the method's per-step work is capturable (``Method.graph_safe``) and the optimizer
    is (SGD, Nesterov, Adam, Adadelta, RMSprop; not Adagrad): the forward, backward and optimizer step
    captured once per batch shape in a CUDA graph (:class:`torch.cuda.CUDAGraph`) and replayed with the batch
    copied into static input buffers; the first ``warmup`` steps run eagerly on a side stream (real training
    steps; they also let cuDNN autotune), then the graph is captured. A second graph is captured for the last,
    smaller batch of an epoch (drop_last false), so the recipe's batches are kept. The optimizer is built fused
    (SGD) or ``capturable`` + foreach (Adam, Adadelta, RMSprop); its learning rate is baked into the graph, so
    a new rate (schedule) re-captures the graphs (no further warm-up). The model and the static input use
    ``channels_last``; ``cudnn.benchmark`` is on unless the run is ``deterministic``. ``method.after_step``
    (Procrustes' projection, SVB/BBN every ``every_steps``) runs on the host between replays, in place on
    the parameters the graph reads;
  * elsewhere (CPU, or a method or optimizer that cannot be captured, e.g. modulation, whose backward hooks
    keep Python state per step): the eager step with the device-side totals and periodic checks. On a CPU
    this is the eager step's arithmetic exactly (same optimizer implementation, same memory format), so the
    metrics equal the eager engine's when the run does not diverge.

``describe()`` says which path ran (``fast+cuda_graphs`` or ``fast (fallback: <reason>)``); the trainer writes
it into the run's provenance. bf16 (``precision: bf16``) wraps the forward pass in autocast (the loss term of
a method stays float32); it is opt-in and has to be validated against fp32 on a short schedule before its
numbers count for a table (:func:`bf16_validated`, ``normbench bench --validate-bf16``).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ENGINES = ("eager", "fast")
PRECISIONS = ("fp32", "bf16")
ENGINE_DEFAULTS: dict[str, Any] = {
    "name": "eager",
    "precision": "fp32",
    "drop_last": False,
    "cuda_graphs": True,
    "check_every": 50,
    "bf16_validation": None,
}

# Optimizer options that make ``optimizer.step()`` capturable in a CUDA graph (no host reads of its state).
CAPTURE_OPTIONS: dict[str, dict[str, Any] | None] = {
    "sgd": {"fused": True},
    "nesterov": {"fused": True},
    "adam": {"capturable": True, "foreach": True},
    "adadelta": {"capturable": True, "foreach": True},
    "rmsprop": {"capturable": True, "foreach": True},
    "adagrad": None,  # its step counter lives on the host
}


def build_optimizer(
    params, cfg: dict[str, Any], weight_decay: bool = True, **options
) -> torch.optim.Optimizer:
    """The optimizer set of Xie et al. 2017, Table 2; ``weight_decay=False`` when a method replaces L2.

    ``options`` go to the optimizer's constructor (e.g. ``fused=True``); the arithmetic is the same.
    """
    name, lr, mom = cfg["name"], cfg["lr"], cfg["momentum"]
    wd = cfg["weight_decay"] if weight_decay else 0.0
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=mom, weight_decay=wd, **options)
    if name == "nesterov":
        return torch.optim.SGD(params, lr=lr, momentum=mom, weight_decay=wd, nesterov=True, **options)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=wd, **options)
    if name == "adadelta":
        return torch.optim.Adadelta(params, lr=lr, weight_decay=wd, **options)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd, **options)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=mom, weight_decay=wd, **options)
    raise ValueError(f"unknown optimizer {name!r}")


def engine_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The run's ``engine`` block with defaults filled in (a run config without one: the eager engine)."""
    out = {**ENGINE_DEFAULTS, **(cfg.get("engine") or {})}
    if out["name"] not in ENGINES:
        raise ValueError(f"engine.name must be one of {ENGINES}, got {out['name']!r}")
    if out["precision"] not in PRECISIONS:
        raise ValueError(f"engine.precision must be one of {PRECISIONS}, got {out['precision']!r}")
    return out


@dataclass
class EpochStats:
    """What one epoch of steps produced: totals for the epoch record, or where it diverged."""

    loss_sum: float = 0.0
    wrong: int = 0
    seen: int = 0
    steps: int = 0
    diverged: dict[str, Any] | None = None  # {"iteration", "value", "window": [first, last]}


def _autocast(device: torch.device, precision: str, cache: bool = True):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=cache)
    return contextlib.nullcontext()


def _forward_loss(model, method, x, y, device, precision, cache=True):
    """``(logits, loss, total)``: the forward pass (autocast for bf16), CE and the method's loss term."""
    with _autocast(device, precision, cache):
        logits = model(x)
    loss = F.cross_entropy(logits.float(), y)
    extra = method.loss_term(model)
    return logits, loss, (loss if extra is None else loss + extra)


class EagerStep:
    """The original loop body (see the module docstring); ``step_count`` counts steps over the whole run."""

    def __init__(self, model: nn.Module, method, optimizer: torch.optim.Optimizer, precision: str = "fp32"):
        self.model, self.method, self.optimizer, self.precision = model, method, optimizer, precision
        self.device = next(model.parameters()).device
        self.step_count = 0
        self.stats = EpochStats()

    def describe(self) -> dict[str, Any]:
        return {"engine": "eager", "precision": self.precision, "cuda_graphs": False}

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def start_epoch(self) -> None:
        self.stats = EpochStats()

    def step(self, x: torch.Tensor, y: torch.Tensor) -> bool:
        """One training step; ``False`` (and nothing applied) when the total loss is non-finite."""
        logits, loss, total = _forward_loss(self.model, self.method, x, y, self.device, self.precision)
        if not torch.isfinite(total):
            it = self.step_count
            self.stats.diverged = {"iteration": it, "value": total.item(), "window": [it, it]}
            return False
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        self.method.after_step(self.model, self.step_count)
        self.step_count += 1
        s = self.stats
        s.steps += 1
        s.loss_sum += loss.item() * len(y)
        s.wrong += (logits.argmax(1) != y).sum().item()
        s.seen += len(y)
        return True

    def end_epoch(self) -> EpochStats:
        return self.stats


@dataclass
class _Graph:
    graph: Any
    x: torch.Tensor
    y: torch.Tensor


@dataclass
class _Totals:
    """Device-side running totals of one epoch (see :meth:`FastStep._accumulate`)."""

    loss: torch.Tensor
    wrong: torch.Tensor
    steps: torch.Tensor
    first_bad: torch.Tensor
    bad_value: torch.Tensor

    @classmethod
    def zeros(cls, device: torch.device) -> _Totals:
        z = dict(device=device)
        return cls(
            torch.zeros((), dtype=torch.float64, **z),
            torch.zeros((), dtype=torch.int64, **z),
            torch.zeros((), dtype=torch.int64, **z),
            torch.full((), -1, dtype=torch.int64, **z),
            torch.zeros((), dtype=torch.float32, **z),
        )

    def reset(self) -> None:
        for t in (self.loss, self.wrong, self.steps, self.bad_value):
            t.zero_()
        self.first_bad.fill_(-1)


def graph_plan(device: torch.device, method, optimizer_name: str, cuda_graphs: bool = True) -> str | None:
    """``None`` when the step can be captured in a CUDA graph on ``device``, else the reason it cannot."""
    if device.type != "cuda":
        return f"no CUDA graphs on {device.type}"
    if not cuda_graphs:
        return "engine.cuda_graphs is false"
    if not torch.cuda.is_available():
        return "CUDA is not available"
    if not getattr(method, "graph_safe", True):
        return f"method {method.name!r} keeps Python state in its per-step hooks"
    if CAPTURE_OPTIONS.get(optimizer_name) is None:
        return f"optimizer {optimizer_name!r} cannot be captured"
    return None


class FastStep:
    """The same step as :class:`EagerStep`, with device-side totals and, on CUDA, CUDA-graph replay.

    ``fallback`` is ``None`` when graphs are used, else the reason they are not (the eager arithmetic then
    runs with device-side totals). See the module docstring for the details and the divergence semantics.
    """

    def __init__(
        self,
        model: nn.Module,
        method,
        optimizer: torch.optim.Optimizer,
        precision: str = "fp32",
        fallback: str | None = "no CUDA graphs requested",
        check_every: int = 50,
        warmup: int = 3,
        deterministic: bool = True,
    ):
        if check_every < 1:
            raise ValueError(f"check_every must be >= 1, got {check_every}")
        self.model, self.method, self.optimizer, self.precision = model, method, optimizer, precision
        self.device = next(model.parameters()).device
        self.fallback, self.check_every, self.warmup = fallback, int(check_every), int(warmup)
        self.deterministic = deterministic
        self.step_count = 0
        self.totals = _Totals.zeros(self.device)
        self.graphs: dict[int, _Graph] = {}
        self.graph_lr: list[float] | None = None
        self.eager_steps = 0  # warm-up steps run so far (graph path)
        self.captures = 0
        self._prepared = False
        self.start_epoch()

    @property
    def use_graphs(self) -> bool:
        return self.fallback is None

    def describe(self) -> dict[str, Any]:
        return {
            "engine": "fast+cuda_graphs" if self.use_graphs else f"fast (fallback: {self.fallback})",
            "precision": self.precision,
            "cuda_graphs": self.use_graphs,
            "check_every": self.check_every,
            "captures": self.captures,
        }

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def start_epoch(self) -> None:
        self.totals.reset()
        self.seen = self.steps = 0
        self.epoch_start = self.step_count
        self.last_check = self.step_count
        self.diverged: dict[str, Any] | None = None

    # -- one step ---------------------------------------------------------------------------------------------
    def _accumulate(self, logits, loss, total, y) -> None:
        """Running totals on the device: loss * n, wrong predictions, steps, first non-finite total."""
        t = self.totals
        with torch.no_grad():
            t.loss.add_(loss.detach().double() * y.shape[0])
            t.wrong.add_((logits.detach().argmax(1) != y).sum())
            total = total.detach().float()
            first = ~torch.isfinite(total) & (t.first_bad < 0)
            t.first_bad.copy_(torch.where(first, t.steps, t.first_bad))
            t.bad_value.copy_(torch.where(first, total, t.bad_value))
            t.steps.add_(1)

    def _body(self, x: torch.Tensor, y: torch.Tensor, zero_grad: bool = True, cache: bool = True) -> None:
        logits, loss, total = _forward_loss(self.model, self.method, x, y, self.device, self.precision, cache)
        self._accumulate(logits, loss, total, y)
        if zero_grad:
            self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()

    def _prepare(self) -> None:
        """Once, before the first step (after any resume): memory format and cuDNN autotuning (graph path)."""
        self._prepared = True
        if not self.use_graphs:
            return
        if not self.deterministic:
            torch.backends.cudnn.benchmark = True
        self.model.to(memory_format=torch.channels_last)
        for state in self.optimizer.state.values():  # e.g. momentum buffers loaded from a resume checkpoint
            for k, v in state.items():
                if torch.is_tensor(v) and v.dim() == 4:
                    state[k] = v.contiguous(memory_format=torch.channels_last)

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> _Graph:
        """Capture the step for batches shaped like ``(x, y)`` (nothing is executed by the capture)."""
        sx = torch.empty_like(x, memory_format=torch.channels_last) if x.dim() == 4 else torch.empty_like(x)
        sy = torch.empty_like(y)
        sx.copy_(x)
        sy.copy_(y)
        self.optimizer.zero_grad(set_to_none=True)  # the graph then writes (not adds) the gradients
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._body(sx, sy, zero_grad=False, cache=False)
        self.captures += 1
        return _Graph(graph, sx, sy)

    def _run(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if not self.use_graphs:
            self._body(x, y)
            return
        lrs = [g["lr"] for g in self.optimizer.param_groups]
        if lrs != self.graph_lr:  # the rate is baked into the captured optimizer step
            self.graphs.clear()
            self.graph_lr = lrs
        if self.eager_steps < self.warmup:
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                self._body(x, y)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            self.eager_steps += 1
            return
        g = self.graphs.get(len(y))
        if g is None:
            g = self.graphs[len(y)] = self._capture(x, y)
        else:
            g.x.copy_(x)
            g.y.copy_(y)
        g.graph.replay()

    def step(self, x: torch.Tensor, y: torch.Tensor) -> bool:
        """One training step; ``False`` once a non-finite loss has been found (see the module docstring)."""
        if not self._prepared:
            self._prepare()
        self._run(x, y)
        self.seen += len(y)
        self.steps += 1
        try:
            self.method.after_step(self.model, self.step_count)
        except (torch.linalg.LinAlgError, RuntimeError):
            self.step_count += 1
            if self.check():  # a hook failing on non-finite weights: the divergence, found now
                return False
            raise
        self.step_count += 1
        if self.steps % self.check_every == 0:
            return not self.check()
        return True

    def check(self) -> bool:
        """Read the device-side divergence flag (a synchronisation); ``True`` when the epoch diverged."""
        first = int(self.totals.first_bad.item())
        if first >= 0 and self.diverged is None:
            self.diverged = {
                "iteration": self.epoch_start + first,
                "value": float(self.totals.bad_value.item()),
                "window": [self.last_check, self.step_count - 1],
            }
        self.last_check = self.step_count
        return self.diverged is not None

    def end_epoch(self) -> EpochStats:
        """The epoch's totals (one synchronisation); ``diverged`` set if any step's total was non-finite."""
        self.check()
        t = self.totals
        return EpochStats(float(t.loss.item()), int(t.wrong.item()), self.seen, self.steps, self.diverged)


def build_step(
    engine: dict[str, Any],
    model: nn.Module,
    method,
    optimizer_cfg: dict[str, Any],
    deterministic: bool = True,
) -> EagerStep | FastStep:
    """The step object (and its optimizer) for a model already on its device, as ``engine`` asks."""
    engine = {**ENGINE_DEFAULTS, **engine}
    device = next(model.parameters()).device
    wd = method.uses_weight_decay
    if engine["name"] == "eager":
        return EagerStep(
            model, method, build_optimizer(model.parameters(), optimizer_cfg, wd), engine["precision"]
        )
    fallback = graph_plan(device, method, optimizer_cfg["name"], engine["cuda_graphs"])
    options = CAPTURE_OPTIONS[optimizer_cfg["name"]] if fallback is None else {}
    optimizer = build_optimizer(model.parameters(), optimizer_cfg, wd, **(options or {}))
    return FastStep(
        model,
        method,
        optimizer,
        engine["precision"],
        fallback,
        engine["check_every"],
        deterministic=deterministic,
    )


# -- the bf16 gate -----------------------------------------------------------------------------------------------
def bf16_validated(cfg: dict[str, Any], root: str | Path = ".") -> bool:
    """Whether a run may count for a table: fp32, or bf16 with a passing validation file for its network.

    The file (``engine.bf16_validation``, relative to ``root``) is what ``normbench bench --validate-bf16``
    writes: ``{"arch", "passed", ...}``; it must name the run's network (``arch``) and have passed.
    """
    engine = engine_config(cfg)
    if engine["precision"] == "fp32":
        return True
    path = engine["bf16_validation"]
    if not path:
        return False
    try:
        verdict = json.loads((Path(root) / path).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return bool(verdict.get("passed")) and verdict.get("arch") == cfg.get("arch", cfg.get("model"))
