"""The training loop: one run = one (experiment, model, method, seed), resumable at epoch boundaries.

:func:`train_run` trains one run; :func:`train_pack` trains several seeds of one (experiment, model, method)
in one process, their steps interleaved (:mod:`normbench.training.pack`, ``engine.pack``), each exactly as alone.

Per epoch, for each mini-batch of :mod:`normbench.training.batches` (shuffled and augmented with draws from a
generator seeded with the run's seed; in-memory tensors or streamed image folders):

    x = normalize(augment(x_uint8))           4-px pad-and-crop and flip, per-sample draws
    loss = CE(model(x), y) + method.loss_term(model)
    loss.backward(); optimizer.step(); method.after_step(model, step)

then ``method.after_epoch`` (at the last epoch also ``method.finalize``, so the model evaluated last is the
model saved in ``checkpoint.pt``), an evaluation on the test set, one record appended to ``metrics.jsonl``
and an atomic resume checkpoint. An unhealthy evaluation (a non-finite test loss, or one above
``EVAL_LOSS_FACTOR`` = 100 times the chance level ln(num_classes)) is recorded before its epoch record as
``{"kind": "eval_health", "epoch", "test_loss", "reason"}`` and the run goes on. Fault injection goes through
one explicit hook: the callables of :data:`FAULTS`, called at the named points of :data:`FAULT_POINTS`. The step itself is an object of :mod:`normbench.training.engine` chosen by the run's
``engine`` block: the eager loop body (default) or the fast engine (device-side running totals, CUDA-graph
replay on a GPU); both compute the same step. The engine that actually ran (``fast+cuda_graphs`` or its
fallback) and, for bf16, whether a passing fp32 validation exists are written into ``provenance.json``. A non-finite training loss stops the run: the log gets a ``diverged`` record and the
run ends normally, since divergence is a result (Zaeemzadeh et al. 2020, Plain-164). Training error is the
running error over the epoch's mini-batches in train mode, as the papers' training curves report it.

The last mini-batch of an epoch is kept even when smaller than ``batch_size`` (``engine.drop_last: false``,
the default; the fast engine captures a second CUDA graph for it). With ``drop_last: true`` it is dropped under
either engine. The evaluation records test loss, top-1 and top-5 error.

Probes (``cfg["probes"]["names"]``, :mod:`normbench.probes`) are recorded at epoch 0 (initialisation) and
every ``every`` epochs after the evaluation, as ``{"kind": "probe", "epoch", "probes", "seconds"}`` records,
and, on an iteration schedule (``iterations``: a list; ``every_iterations``: a period; both off by default),
right after those training steps inside the epoch, with the record's ``"iteration"`` (steps from 1 over the run),
on one fixed batch: the first ``batch`` images of a permutation seeded with 0 (the same images for every
seed and model), normalised, not augmented, with the model in train mode (batch statistics, as during the
training step the probes describe); the probes restore the BN running statistics they touch.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import socket
import sys
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from normbench.methods import build_method
from normbench.models import build_model
from normbench.models.layers import apply_init
from normbench.probes import record_probes
from normbench.runs.folder import append_record, read_records, with_filename, write_json_atomic
from normbench.runs.records import record_line
from normbench.training.batches import make_batches
from normbench.training.checkpoint import load_latest, save_atomic
from normbench.training.data import load_dataset, load_prepared
from normbench.training.engine import (
    bf16_validated,
    build_optimizer,  # noqa: F401  (re-exported: normbench.training.trainer.build_optimizer)
    build_step,
    engine_config,
)
from normbench.training.pack import interleave
from normbench.training.provenance import code_fingerprint, describe_code, provenance


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: cuda was asked for but no CUDA device is available")
    return torch.device(name)


def set_determinism(seed: int, deterministic: bool, device: torch.device | None = None) -> None:
    """Seed every generator; with ``deterministic`` on a GPU, ask torch for deterministic kernels.

    On the CPU the flag is not set: torch's CPU kernels give the same result run to run already (the
    same-seed tests check it), and setting it imports torch's compiler configuration, about 1-2 s per job,
    which is most of a smoke-scale training job.
    """
    torch.manual_seed(seed)
    if deterministic and (device is None or device.type != "cpu"):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def lr_at(epoch: int, optimizer_cfg: dict[str, Any], schedule: dict[str, Any], epochs: int) -> float:
    """Learning rate during ``epoch`` (counted from 1).

    constant: lr. step: lr * gamma^(number of milestones <= epoch - 1), i.e. the rate drops *after* the
    milestone epoch (He et al.: /10 at epochs 150 and 225). log: lr_k = lr * (final_lr/lr)^(k/(K-1)) for the
    k-th of K = ceil(epochs/every) levels, level k covering epochs k*every+1 .. (k+1)*every (Jia et al. 2017).
    """
    lr = optimizer_cfg["lr"]
    name = schedule["name"]
    if name == "constant":
        return lr
    if name == "step":
        return lr * schedule["gamma"] ** sum(1 for m in schedule["milestones"] if epoch > m)
    if name == "log":
        levels = math.ceil(epochs / schedule["every"])
        k = (epoch - 1) // schedule["every"]
        return lr if levels <= 1 else lr * (schedule["final_lr"] / lr) ** (k / (levels - 1))
    raise ValueError(f"unknown schedule {name!r}")


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    """Mean cross-entropy, top-1 and top-5 error (%) over a data split, in eval mode."""
    model.eval()
    loss_sum, wrong, wrong5, n = 0.0, 0, 0, 0
    for x, y in batches:
        logits = model(x)
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        wrong += (top[:, 0] != y).sum().item()
        wrong5 += (top != y[:, None]).all(dim=1).sum().item()
        n += len(y)
    return {"test_loss": loss_sum / n, "test_error": 100.0 * wrong / n, "test_top5_error": 100.0 * wrong5 / n}


FAULT_POINTS = (
    "step",  # after each training step: epoch, step (counted from 1 within the epoch)
    "evaluated",  # after an epoch's evaluation, before its health check: epoch, test (the metrics, mutable)
    "record",  # after a record is appended to metrics.jsonl: record
    "checkpoint_write",  # before a checkpoint (resume.pt, checkpoint.pt) is written: path, epoch
    "checkpoint_tmp",  # its temporary file written and fsynced, nothing renamed yet: path, epoch, tmp
    "checkpoint_rotated",  # the old one renamed to <name>.prev, the new one not in place yet: path, epoch, tmp
    "checkpoint_saved",  # the checkpoint in place: path, epoch
    "provenance",  # checkpoint.pt written, provenance.json not yet: path
)
"""The named points of a run at which :func:`fault_point` calls the hooks of :data:`FAULTS`."""

FAULTS: list[Callable[..., None]] = []
"""Fault-injection hooks: each is called as ``hook(point, run=<run folder>, **info)`` at every point of
:data:`FAULT_POINTS` (the info named there). A hook may raise, kill its process or change the mutable values
it is given (the ``test`` metrics of ``evaluated``); the fault tests inject their kills and bad evaluations
here, never by patching the trainer's names. Empty (no cost) in a normal run; see :func:`injected`."""


def fault_point(point: str, run: Path, **info: Any) -> None:
    """Call every hook of :data:`FAULTS` as ``hook(point, run=run, **info)``."""
    for hook in tuple(FAULTS):
        hook(point, run=run, **info)


@contextmanager
def injected(hook: Callable[..., None]) -> Iterator[Callable[..., None]]:
    """Register ``hook`` in :data:`FAULTS` for the ``with`` block."""
    FAULTS.append(hook)
    try:
        yield hook
    finally:
        FAULTS.remove(hook)


EVAL_LOSS_FACTOR = 100.0
"""A test loss above ``EVAL_LOSS_FACTOR * ln(num_classes)`` (100 times the chance-level loss of a uniform
prediction; 230 nats for 10 classes) is absurd: see :func:`eval_health`."""


# Within an epoch, a progress line at most every this many seconds (env NORMBENCH_PROGRESS_SECONDS; 0: none):
# steps done, rate, epoch and run ETA. An ImageNet epoch is hours; a log file should still show the run moving.
PROGRESS_SECONDS = 60.0


def progress_seconds() -> float:
    """The in-epoch progress interval: ``NORMBENCH_PROGRESS_SECONDS`` if set (a number, 0: off), else 60."""
    raw = os.environ.get("NORMBENCH_PROGRESS_SECONDS")
    if raw is None or raw.strip() == "":
        return PROGRESS_SECONDS
    try:
        return max(float(raw), 0.0)
    except ValueError:
        raise ValueError(f"NORMBENCH_PROGRESS_SECONDS must be a number of seconds, got {raw!r}") from None


def clock(seconds: float) -> str:
    """``3725.4`` -> ``1:02:05`` (hours:minutes:seconds), for ETAs in a log line."""
    s = int(round(max(seconds, 0.0)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def progress_line(
    tag: str, epoch: int, epochs: int, step: int, steps: int, batch: int, elapsed: float
) -> str:
    """One in-epoch progress line: ``step`` of ``steps`` done after ``elapsed`` seconds of this epoch, the rate
    in images/s and the ETAs of the epoch and of the run (the rest of this epoch plus the epochs after it at
    this epoch's rate)."""
    per_step = elapsed / max(step, 1)
    left = steps - step + (epochs - epoch) * steps
    return (
        f"{tag} epoch {epoch}/{epochs} step {step}/{steps} ({100 * step / max(steps, 1):.0f}%) "
        f"{batch * step / max(elapsed, 1e-9):.0f} img/s; epoch ETA {clock((steps - step) * per_step)}, "
        f"run ETA {clock(left * per_step)}"
    )


def eval_health(test_loss: float, num_classes: int) -> str | None:
    """Why an evaluation's mean test loss is unhealthy (non-finite, or above ``EVAL_LOSS_FACTOR`` times the
    chance level ``ln(num_classes)``), or ``None`` when it is healthy."""
    if not math.isfinite(test_loss):
        return f"non-finite test loss ({test_loss})"
    chance = math.log(num_classes)
    if test_loss > EVAL_LOSS_FACTOR * chance:
        return (
            f"test loss {test_loss:.4g} above {EVAL_LOSS_FACTOR:g} x ln({num_classes}) = "
            f"{EVAL_LOSS_FACTOR * chance:.4g}, {EVAL_LOSS_FACTOR:g} times the chance level"
        )
    return None


def probe_due(probes: dict[str, Any], iteration: int) -> bool:
    """Whether the probes' iteration schedule (``iterations``, ``every_iterations``) asks for a record after
    training iteration ``iteration`` (counted from 1 over the whole run)."""
    every = probes.get("every_iterations", 0)
    return iteration in probes.get("iterations", ()) or (every > 0 and iteration % every == 0)


def _probe_record(
    model: nn.Module, batch, probes: dict[str, Any], epoch: int, iteration: int | None = None
) -> dict[str, Any]:
    model.train()
    result = record_probes(model, batch, probes["names"], probes["options"])
    rec = {"kind": "probe", "epoch": epoch, **result}
    if iteration is not None:  # an iteration-schedule record, taken inside epoch ``epoch``
        rec["iteration"] = iteration
    return rec


PACK_KEYS_FREE = ("seed",)  # what may differ between the members of a pack


class PackError(ValueError):
    """Runs that cannot share a pack (configs differing beyond the seed, repeated seeds or folders)."""


class RunFolderBusy(RuntimeError):
    """Another live process holds the run folder's lock (``normbench train`` exits 75, EX_TEMPFAIL)."""

    def __init__(self, folder: Path, holder: str):
        super().__init__(f"run folder {folder} is being written by another process ({holder})")
        self.folder, self.holder = folder, holder


LOCK_NAME = ".lock"
_held_locks: dict[Path, Any] = {}  # run folder -> its open, flock'ed lock file; kept for the process's life


def lock_run_folder(folder: str | Path) -> None:
    """Take the run folder's writer lock: ``fcntl.flock`` on ``<folder>/.lock``, held until this process
    ends (the kernel releases it when the process dies, however it dies). Raises :class:`RunFolderBusy`,
    naming the holder (host, pid, start time, as the holder wrote them into the lock file), when another
    process holds it. Taking it again in the process that holds it is a no-op."""
    folder = Path(folder).resolve()
    if folder in _held_locks:
        return
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_NAME
    try:
        fh = open(lock, "a+", encoding="utf-8")  # noqa: SIM115  (held open for the process's life)
    except OSError as err:
        raise with_filename(err, lock) from None
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        info = _read_lock_holder(fh)
        fh.close()
        holder = (
            f"host {info.get('host', '?')}, pid {info.get('pid', '?')}, started {info.get('started', '?')}"
        )
        raise RunFolderBusy(folder, holder) from None
    _held_locks[folder] = fh


HOLDER_WAIT_SECONDS = 5.0
"""How long a process refused the lock waits for the holder to write its identity (it does so right after
taking the lock, once it knows the run is not finished) before naming it '?'."""


def _read_lock_holder(fh: Any) -> dict[str, Any]:
    """The holder's host, pid and start time from the lock file; an empty or half-written file (the holder
    has the lock but has not written itself yet) is read again every 50 ms for up to
    :data:`HOLDER_WAIT_SECONDS`."""
    deadline = time.monotonic() + HOLDER_WAIT_SECONDS
    while True:
        fh.seek(0)
        try:
            info = json.loads(fh.read() or "{}")
        except json.JSONDecodeError:
            info = {}
        if info.get("pid") or time.monotonic() >= deadline:
            return info
        time.sleep(0.05)


def _write_lock_holder(folder: Path) -> None:
    """Write this process's host, pid and start time into the lock file it holds."""
    fh = _held_locks[folder.resolve()]
    info = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    try:
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(info, sort_keys=True) + "\n")
        fh.flush()
    except OSError as err:
        raise with_filename(err, folder / LOCK_NAME) from None


def finished_run(cfg: dict[str, Any], folder: str | Path) -> dict[str, Any] | None:
    """The summary ``{"status", "epoch"}`` of the finished run in ``folder``, or ``None`` when the folder holds
    no finished run. Finished: ``provenance.json`` (written last) says completed or diverged and the log holds
    every epoch (or the divergence). A finished run of another configuration is an error, not a run to
    overwrite."""
    folder = Path(folder)
    try:
        prov = json.loads((folder / "provenance.json").read_text())
        records = read_records(folder / "metrics.jsonl", allow_partial_last=False)
    except (OSError, ValueError):
        return None
    status = prov.get("status")
    epochs = sum(r.get("kind") == "epoch" for r in records)
    diverged = any(r.get("kind") == "diverged" for r in records)
    if not (status == "completed" and epochs >= cfg["epochs"] and not diverged) and not (
        status == "diverged" and diverged
    ):
        return None
    try:
        old_cfg = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        old_cfg = None
    if old_cfg != cfg:
        raise ValueError(
            f"run folder {folder} holds a finished run of another configuration; "
            "use --force to move it aside and train this one"
        )
    return {"status": status, "epoch": epochs, "finished": True}


def move_aside(folder: str | Path) -> Path | None:
    """Move the contents of ``folder`` (all but its lock file) to ``<folder>.old-<timestamp>/``; return it
    (``None`` when there was nothing to move)."""
    folder = Path(folder)
    items = [p for p in folder.iterdir() if p.name != LOCK_NAME] if folder.exists() else []
    if not items:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%S")
    aside = folder.with_name(f"{folder.name}.old-{stamp}")
    n = 1
    while aside.exists():
        aside, n = folder.with_name(f"{folder.name}.old-{stamp}-{n}"), n + 1
    aside.mkdir(parents=True)
    for p in items:
        p.replace(aside / p.name)
    return aside


def open_data(cfg: dict[str, Any], data_path: str | Path | None = None):
    """``(device, data, batches)`` of a run config: its threads set, its device chosen, its data set loaded
    (the prepared file ``data_path``, else from ``data_root``) and cut into mini-batches on that device."""
    if cfg.get("threads"):
        torch.set_num_threads(cfg["threads"])
    device = select_device(cfg["device"])
    data = (
        load_prepared(data_path)
        if data_path
        else load_dataset(cfg["dataset"], cfg["data_root"], image_size=cfg["image_size"])
    )
    batches = make_batches(
        data,
        device,
        cfg["batch_size"],
        cfg["augment"],
        cfg.get("workers", 0),
        cfg.get("preprocess", "per_channel"),  # run configs written before the key: today's default
    )
    return device, data, batches


def train_run(
    cfg: dict[str, Any],
    out_dir: str | Path,
    data_path: str | Path | None = None,
    log: Callable[[str], None] = print,
    force: bool = False,
) -> dict[str, Any]:
    """Train one run described by its resolved config ``cfg``; write its folder ``out_dir``.

    Writes ``config.json``, ``provenance.json``, ``metrics.jsonl`` and, at the end, ``checkpoint.pt``
    (``{"model": state_dict, "constraints": [...], "config": cfg, "epoch", "status"}``). A ``resume.pt`` left
    by an interrupted run is picked up: training resumes after its epoch and ends with the same metrics as an
    uninterrupted run. Returns the final checkpoint's metadata.
    """
    return train_pack([(cfg, out_dir)], data_path, log, force)[0]


def train_pack(
    runs: list[tuple[dict[str, Any], str | Path]],
    data_path: str | Path | None = None,
    log: Callable[[str], None] = print,
    force: bool = False,
) -> list[dict[str, Any]]:
    """Train several seeds of one (experiment, model, method) in this process, steps interleaved.

    ``runs`` holds ``(cfg, out_dir)`` pairs whose configs differ in ``seed`` only. The data set is loaded (and
    put on the device) once; each run then trains exactly as :func:`train_run` would train it alone, with its
    own generators and, on a GPU, its own CUDA stream (:mod:`normbench.training.pack`), and writes its own folder.
    Returns each run's final checkpoint metadata, in order.

    Each run folder is locked first (:func:`lock_run_folder`; :class:`RunFolderBusy` if another process
    writes it), before anything in it is read. A folder that holds the finished run already is not touched:
    its entry is ``{"status", "epoch", "finished": True}``; with ``force`` its contents are first moved
    aside (:func:`move_aside`) and the run is trained again.
    """
    if not runs:
        raise PackError("no runs given")
    first = runs[0][0]
    for cfg, _ in runs[1:]:
        differ = sorted(k for k in {*first, *cfg} - set(PACK_KEYS_FREE) if first.get(k) != cfg.get(k))
        if differ:
            raise PackError(
                f"runs of one pack may differ in seed only; seed {cfg.get('seed')} differs from "
                f"seed {first.get('seed')} in {', '.join(differ)}"
            )
    seeds = [cfg["seed"] for cfg, _ in runs]
    outs = [Path(out).resolve() for _, out in runs]
    if len(set(seeds)) < len(seeds) or len(set(outs)) < len(outs):
        raise PackError(f"seeds and run folders must be distinct, got seeds {seeds}")
    for out in outs:
        lock_run_folder(out)
    done: dict[int, dict[str, Any]] = {}
    for i, (cfg, out) in enumerate(zip((c for c, _ in runs), outs, strict=True)):
        if force:
            aside = move_aside(out)
            if aside is not None:
                log(f"{out}: previous contents moved aside to {aside}")
        else:
            finished = finished_run(cfg, out)
            if finished is not None:
                done[i] = finished
    todo = [i for i in range(len(runs)) if i not in done]
    if not todo:
        return [done[i] for i in range(len(runs))]
    for i in todo:
        _write_lock_holder(outs[i])
    device, data, batches = open_data(first, data_path)
    pack = [seeds[i] for i in todo] if len(todo) > 1 else None
    steps = [_train_steps(runs[i][0], outs[i], data, batches, device, log, pack) for i in todo]
    results = dict(zip(todo, interleave(steps, device), strict=True))
    return [done[i] if i in done else results[i] for i in range(len(runs))]


def _build(cfg: dict[str, Any], data, device: torch.device):
    """Model, method, stepper and batch-order generator of a run, freshly seeded."""
    set_determinism(cfg["seed"], cfg["deterministic"], device)
    # "arch" is the network built for "model" (a smaller stand-in in a proxy run; the same name otherwise)
    model = build_model(
        cfg.get("arch", cfg["model"]), num_classes=data.num_classes, in_channels=data.channels
    )
    apply_init(model, cfg.get("init", "he"))  # the recipe's init, before the method attaches
    method = build_method(cfg["method"], cfg["method_options"])
    method.attach(model)
    model.to(device)
    stepper = build_step(engine_config(cfg), model, method, cfg["optimizer"], cfg["deterministic"])
    gen = torch.Generator().manual_seed(cfg["seed"])
    return model, method, stepper, gen


def _put_stale_aside(resume_path: Path, reason: str, log: Callable[[str], None]) -> None:
    """Move a resume state that does not load into this run's model aside as ``resume.pt.stale-<time>``
    (its ``.prev`` too, as ``resume.pt.prev.stale-<time>``) and say so in one line ending "starting
    afresh"."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    moved = []
    for p in (resume_path, resume_path.with_name(resume_path.name + ".prev")):
        if p.exists():
            stale = p.with_name(f"{p.name}.stale-{stamp}")
            p.replace(stale)
            moved.append(f"moved {p.name} aside to {stale}")
    log(f"{resume_path}: does not load into this run's model ({reason}); {'; '.join(moved)}; starting afresh")


@dataclass
class _Run:
    """One run being trained by :func:`_train_steps`: what its helpers share."""

    cfg: dict[str, Any]
    out: Path
    log: Callable[[str], None]
    num_classes: int
    model: nn.Module
    method: Any
    stepper: Any
    gen: torch.Generator
    records: list[dict[str, Any]] = field(default_factory=list)
    start_epoch: int = 1
    step: int = 0
    prior_seconds: float = 0.0
    status: str = "completed"
    constraints: list[dict[str, Any]] | None = None  # what finalize returned, once it ran
    attempts: list[dict[str, Any]] = field(default_factory=list)
    code_changes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def metrics_path(self) -> Path:
        return self.out / "metrics.jsonl"

    @property
    def resume_path(self) -> Path:
        return self.out / "resume.pt"

    @property
    def tag(self) -> str:
        c = self.cfg
        return f"[{c['experiment']}/{c['model']}/{c['method']}/seed{c['seed']}]"

    def append(self, rec: dict[str, Any]) -> None:
        """Append ``rec`` to the run's records and to ``metrics.jsonl`` (then fault point ``record``)."""
        self.records.append(rec)
        append_record(self.metrics_path, rec)
        fault_point("record", self.out, record=rec)


def _save(out: Path, obj: dict[str, Any], path: Path) -> None:
    """:func:`save_atomic` of a checkpoint of run folder ``out``, with fault points ``checkpoint_write``,
    ``checkpoint_tmp``, ``checkpoint_rotated`` and ``checkpoint_saved``."""
    epoch = obj["epoch"]
    fault_point("checkpoint_write", out, path=path, epoch=epoch)
    save_atomic(
        obj, path, event=lambda point, **info: fault_point(point, out, path=path, epoch=epoch, **info)
    )
    fault_point("checkpoint_saved", out, path=path, epoch=epoch)


def _train_steps(
    cfg: dict[str, Any],
    out: Path,
    data,
    batches,
    device: torch.device,
    log: Callable[[str], None],
    pack: list[int] | None,
) -> Generator[None, None, dict[str, Any]]:
    """One run of :func:`train_pack`: a generator that yields after every training step; returns the
    final checkpoint's metadata."""
    t_start = time.time()
    out.mkdir(parents=True, exist_ok=True)
    r = _Run(cfg, out, log, data.num_classes, *_build(cfg, data, device))
    write_json_atomic(out / "config.json", cfg)
    state = load_latest(r.resume_path, log=lambda m: print(m, file=sys.stderr))
    _resume(r, state, data, device)
    _note_attempt(r, state)
    # The log always restarts from what the checkpoint holds (append-only from there on).
    try:
        r.metrics_path.write_text("".join(record_line(rec) for rec in r.records))
    except OSError as err:
        raise with_filename(err, r.metrics_path) from None
    probes = cfg["probes"]
    pbatch = batches.probe_batch(probes["batch"]) if probes["names"] else None
    if pbatch is not None and r.start_epoch == 1:
        r.append(_probe_record(r.model, pbatch, probes, 0))
    if any(rec["kind"] == "diverged" for rec in r.records):
        r.status = "diverged"
    for epoch in range(r.start_epoch, cfg["epochs"] + 1):
        if r.status == "diverged":
            break
        yield from _epoch(r, epoch, batches, pbatch)
    return _finish(r, device, t_start, pack)


def _resume(r: _Run, state: dict[str, Any] | None, data, device: torch.device) -> None:
    """Continue ``r`` from the resume state ``state`` (``None``: nothing to resume). A state of another
    configuration is ignored and one that does not load into the model is put aside
    (:func:`_put_stale_aside`): either way the run starts afresh."""
    if state is None:
        return
    if state.get("config") != r.cfg:
        r.log(f"{r.resume_path}: written for another configuration; starting afresh")
        return
    try:
        r.model.load_state_dict(state["model"])
        r.stepper.optimizer.load_state_dict(state["optimizer"])
        r.method.load_state_dict(state["method"])
        r.gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        records, step = state["records"], state["step"]
        start_epoch, prior_seconds = state["epoch"] + 1, state["train_seconds"]
    except (RuntimeError, KeyError, ValueError, TypeError) as err:
        # e.g. the model code changed between attempts: the state cannot resume this run, and every
        # retry would fail the same way. Put it aside and start from a freshly seeded model.
        reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        _put_stale_aside(r.resume_path, reason, lambda m: print(m, file=sys.stderr))
        r.model, r.method, r.stepper, r.gen = _build(r.cfg, data, device)
        return
    r.records, r.step, r.start_epoch, r.prior_seconds = records, step, start_epoch, prior_seconds
    r.constraints = state.get("constraints")
    r.stepper.step_count = step
    c = r.cfg
    r.log(f"[{c['model']}/{c['method']}/seed{c['seed']}] resuming after epoch {state['epoch']}")


def _note_attempt(r: _Run, state: dict[str, Any] | None) -> None:
    """Add this attempt (start time, epoch it resumes after, :func:`code_fingerprint`) to ``r.attempts``,
    after the earlier attempts a resume state of this configuration lists. When the code differs from the
    previous attempt's, record ``{"attempt", "after_epoch", "old", "new"}`` in ``r.code_changes`` (both go into
    the resume states and ``provenance.json``) and log one line."""
    same = state is not None and state.get("config") == r.cfg
    prev = list(state.get("attempts") or []) if same else []
    r.code_changes = list(state.get("code_changes") or []) if same else []
    code, n = code_fingerprint(), len(prev) + 1
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    r.attempts = [*prev, {"attempt": n, "started": started, "resumed_after": r.start_epoch - 1, "code": code}]
    old = prev[-1].get("code") if prev else None
    if old is not None and old != code:
        r.code_changes.append({"attempt": n, "after_epoch": r.start_epoch - 1, "old": old, "new": code})
        r.log(
            f"{r.out}: the code changed between attempts {n - 1} and {n} "
            f"({describe_code(old)} -> {describe_code(code)}); recorded in provenance.json"
        )


def _epoch(r: _Run, epoch: int, batches, pbatch) -> Generator[None, None, None]:
    """Train, evaluate, log and checkpoint epoch ``epoch`` of ``r``: a generator that yields after every
    training step (after fault point ``step``)."""
    cfg = r.cfg
    t0 = time.time()
    lr = lr_at(epoch, cfg["optimizer"], cfg["schedule"], cfg["epochs"])
    r.stepper.set_lr(lr)
    r.model.train()
    r.stepper.start_epoch()
    drop_last = engine_config(cfg)["drop_last"]
    epoch_batches = batches.train_epoch(r.gen, drop_last=drop_last)
    bs = batches.batch_size
    steps = batches.num_train // bs if drop_last else -(-batches.num_train // bs)
    every, last_line = progress_seconds(), t0
    for n, (xb, yb) in enumerate(epoch_batches, 1):
        if not r.stepper.step(xb, yb):
            break
        if every > 0 and n < steps and time.time() - last_line >= every:
            last_line = time.time()
            r.log(progress_line(r.tag, epoch, cfg["epochs"], n, steps, bs, last_line - t0))
        if pbatch is not None and probe_due(cfg["probes"], r.stepper.step_count):
            r.append(_probe_record(r.model, pbatch, cfg["probes"], epoch, r.stepper.step_count))
        fault_point("step", r.out, epoch=epoch, step=n)
        yield
    stats = r.stepper.end_epoch()
    r.step = r.stepper.step_count
    if stats.diverged:
        _record_divergence(r, epoch, stats.diverged)
    else:
        _evaluate_epoch(r, epoch, lr, stats, t0, batches, pbatch)
    r.prior_seconds += time.time() - t0
    _save(r.out, _resume_state(r, epoch), r.resume_path)


def _record_divergence(r: _Run, epoch: int, div: dict[str, Any]) -> None:
    """Record the non-finite training loss the stepper found in ``epoch``: a ``diverged`` record."""
    r.step = div["iteration"]
    rec = {
        "kind": "diverged",
        "epoch": epoch,
        "iteration": div["iteration"],
        "reason": f"non-finite training loss ({div['value']}) at iteration {div['iteration']}",
    }
    if div["window"] != [div["iteration"], div["iteration"]]:
        rec["window"] = div["window"]
    r.status = "diverged"
    r.append(rec)
    r.log(f"{r.tag} epoch {epoch}: DIVERGED ({rec['reason']})")


def _evaluate_epoch(r: _Run, epoch: int, lr: float, stats, t0: float, batches, pbatch) -> None:
    """End a finite epoch: ``after_epoch``; at the last epoch ``finalize`` (so that the model evaluated last
    is the model saved in ``checkpoint.pt``); the evaluation (fault point ``evaluated``); an ``eval_health``
    record when the test loss is unhealthy (:func:`eval_health`); the epoch record; the probes."""
    train_seconds = time.time() - t0
    method_records = r.method.after_epoch(r.model, epoch) or []
    if epoch == r.cfg["epochs"]:
        r.constraints = r.method.finalize(r.model)
    test = evaluate(r.model, batches.test_batches())
    fault_point("evaluated", r.out, epoch=epoch, test=test)
    reason = eval_health(test["test_loss"], r.num_classes)
    if reason:
        r.append({"kind": "eval_health", "epoch": epoch, "test_loss": test["test_loss"], "reason": reason})
        r.log(f"{r.tag} epoch {epoch}: UNHEALTHY EVALUATION ({reason})")
    rec = {
        "kind": "epoch",
        "epoch": epoch,
        "lr": lr,
        "train_loss": stats.loss_sum / stats.seen,
        "train_error": 100.0 * stats.wrong / stats.seen,
        **test,
        "seconds": time.time() - t0,
        "steps": stats.steps,
        "step_seconds": train_seconds / max(stats.steps, 1),
    }
    r.append(rec)
    for extra in method_records:  # the constraint's state after the epoch (procrustes_state)
        r.append(extra)
    probes = r.cfg["probes"]
    if pbatch is not None and epoch % probes["every"] == 0:
        r.append(_probe_record(r.model, pbatch, probes, epoch))
    r.log(
        f"{r.tag} epoch {epoch}/{r.cfg['epochs']} loss {rec['train_loss']:.4f} "
        f"train_err {rec['train_error']:.2f}% test_err {rec['test_error']:.2f}% ({rec['seconds']:.1f}s"
        + (
            f"; run ETA {clock(rec['seconds'] * (r.cfg['epochs'] - epoch))})"
            if epoch < r.cfg["epochs"]
            else ")"
        )
    )


def _resume_state(r: _Run, epoch: int) -> dict[str, Any]:
    """What ``resume.pt`` holds after ``epoch``: everything a resumed attempt needs to continue exactly."""
    return {
        "config": r.cfg,
        "epoch": epoch,
        "step": r.step,
        "records": r.records,
        "train_seconds": r.prior_seconds,
        "model": r.model.state_dict(),
        "optimizer": r.stepper.optimizer.state_dict(),
        "method": r.method.state_dict(),
        "generator": r.gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        "constraints": r.constraints,
        "attempts": r.attempts,
        "code_changes": r.code_changes,
    }


def _finish(r: _Run, device: torch.device, t_start: float, pack: list[int] | None) -> dict[str, Any]:
    """Write ``checkpoint.pt`` (the model as last evaluated, with its constraints), then ``provenance.json``
    (after fault point ``provenance``); remove the resume states and a ``checkpoint.pt.prev`` that a rerun's
    rewrite left. Returns the checkpoint's metadata."""
    if r.status == "diverged":
        # A diverged run of the fast engine kept stepping until its check: its weights may be non-finite,
        # and a constraint's final projection (an SVD) is then meaningless; such a run records none.
        finite = all(bool(torch.isfinite(p).all()) for p in r.model.parameters())
        constraints = r.method.finalize(r.model) if finite else []
    elif r.constraints is None:  # resumed from a last-epoch state of a version that finalized here
        constraints = r.method.finalize(r.model)
    else:
        constraints = r.constraints
    final = {
        "model": r.model.state_dict(),
        "constraints": constraints,
        "config": r.cfg,
        "epoch": len([rec for rec in r.records if rec["kind"] == "epoch"]),
        "status": r.status,
    }
    checkpoint = r.out / "checkpoint.pt"
    _save(r.out, final, checkpoint)
    prov = provenance(device, r.cfg["seed"])
    prov.update(
        status=r.status,
        train_seconds=r.prior_seconds,
        wall_seconds=time.time() - t_start,
        engine=r.stepper.describe(),
        precision_validated=bf16_validated(r.cfg),
        pack=pack,
        started=time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t_start)),
        attempts=r.attempts,
        code_changes=r.code_changes,
    )
    fault_point("provenance", r.out, path=r.out / "provenance.json")
    write_json_atomic(r.out / "provenance.json", prov)
    for p in (
        r.resume_path,
        r.resume_path.with_name("resume.pt.prev"),
        checkpoint.with_name("checkpoint.pt.prev"),
    ):
        p.unlink(missing_ok=True)
    return {k: v for k, v in final.items() if k != "model"}
