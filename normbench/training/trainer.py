"""The training loop: one run = one (experiment, model, method, seed), resumable at epoch boundaries.

:func:`train_run` trains one run; :func:`train_pack` trains several seeds of one (experiment, model, method)
in one process, their steps interleaved (:mod:`normbench.training.pack`, ``engine.pack``), each exactly as alone.

Per epoch, for each mini-batch of :mod:`normbench.training.batches` (shuffled and augmented with draws from a
generator seeded with the run's seed; in-memory tensors or streamed image folders):

    x = normalize(augment(x_uint8))           4-px pad-and-crop and flip, per-sample draws
    loss = CE(model(x), y) + method.loss_term(model)
    loss.backward(); optimizer.step(); method.after_step(model, step)

then ``method.after_epoch``, an evaluation on the test set, one record appended to ``metrics.jsonl`` and an
atomic resume checkpoint. The step itself is an object of :mod:`normbench.training.engine` chosen by the run's
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
from collections.abc import Callable, Generator, Iterable
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
from normbench.training.provenance import provenance


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


def _probe_record(model: nn.Module, batch, probes: dict[str, Any], epoch: int) -> dict[str, Any]:
    model.train()
    result = record_probes(model, batch, probes["names"], probes["options"])
    return {"kind": "probe", "epoch": epoch, **result}


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
        fh.seek(0)
        try:
            info = json.loads(fh.read() or "{}")
        except json.JSONDecodeError:
            info = {}
        fh.close()
        holder = (
            f"host {info.get('host', '?')}, pid {info.get('pid', '?')}, started {info.get('started', '?')}"
        )
        raise RunFolderBusy(folder, holder) from None
    _held_locks[folder] = fh


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
    (its ``.prev`` too, as ``resume.pt.prev.stale-<time>``) and say so."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for p in (resume_path, resume_path.with_name(resume_path.name + ".prev")):
        if p.exists():
            stale = p.with_name(f"{p.name}.stale-{stamp}")
            p.replace(stale)
            log(
                f"{p}: does not load into this run's model ({reason}); moved aside to {stale}, starting afresh"
            )


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
    engine = engine_config(cfg)
    model, method, stepper, gen = _build(cfg, data, device)

    write_json_atomic(out / "config.json", cfg)
    metrics_path = out / "metrics.jsonl"
    resume_path = out / "resume.pt"
    records: list[dict[str, Any]] = []
    start_epoch, step, prior_seconds = 1, 0, 0.0
    state = load_latest(resume_path, log=lambda m: print(m, file=sys.stderr))
    if state is not None and state.get("config") == cfg:
        try:
            model.load_state_dict(state["model"])
            stepper.optimizer.load_state_dict(state["optimizer"])
            method.load_state_dict(state["method"])
            gen.set_state(state["generator"])
            torch.set_rng_state(state["torch_rng"])
            records, step = state["records"], state["step"]
            start_epoch, prior_seconds = state["epoch"] + 1, state["train_seconds"]
        except (RuntimeError, KeyError, ValueError, TypeError) as err:
            # e.g. the model code changed between attempts: the state cannot resume this run, and every
            # retry would fail the same way. Put it aside and start from a freshly seeded model.
            reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            _put_stale_aside(resume_path, reason, lambda m: print(m, file=sys.stderr))
            model, method, stepper, gen = _build(cfg, data, device)
            records, step, start_epoch, prior_seconds = [], 0, 1, 0.0
        else:
            stepper.step_count = step
            log(f"[{cfg['model']}/{cfg['method']}/seed{cfg['seed']}] resuming after epoch {state['epoch']}")
    elif state is not None:
        log(f"{resume_path}: written for another configuration; starting afresh")
    optimizer = stepper.optimizer
    # The log always restarts from what the checkpoint holds (append-only from there on).
    try:
        metrics_path.write_text("".join(record_line(r) for r in records))
    except OSError as err:
        raise with_filename(err, metrics_path) from None
    probes = cfg["probes"]
    pbatch = batches.probe_batch(probes["batch"]) if probes["names"] else None
    if pbatch is not None and start_epoch == 1:
        rec = _probe_record(model, pbatch, probes, 0)
        records.append(rec)
        append_record(metrics_path, rec)

    status = "diverged" if any(r["kind"] == "diverged" for r in records) else "completed"
    tag = f"[{cfg['experiment']}/{cfg['model']}/{cfg['method']}/seed{cfg['seed']}]"
    for epoch in range(start_epoch, cfg["epochs"] + 1):
        if status == "diverged":
            break
        t0 = time.time()
        lr = lr_at(epoch, cfg["optimizer"], cfg["schedule"], cfg["epochs"])
        stepper.set_lr(lr)
        model.train()
        stepper.start_epoch()
        for xb, yb in batches.train_epoch(gen, drop_last=engine["drop_last"]):
            if not stepper.step(xb, yb):
                break
            yield
        stats = stepper.end_epoch()
        step = stepper.step_count
        diverged = None
        if stats.diverged:
            div = stats.diverged
            step = div["iteration"]
            diverged = {
                "kind": "diverged",
                "epoch": epoch,
                "iteration": div["iteration"],
                "reason": f"non-finite training loss ({div['value']}) at iteration {div['iteration']}",
            }
            if div["window"] != [div["iteration"], div["iteration"]]:
                diverged["window"] = div["window"]
        if diverged:
            status = "diverged"
            records.append(diverged)
            append_record(metrics_path, diverged)
            log(f"{tag} epoch {epoch}: DIVERGED ({diverged['reason']})")
        else:
            train_seconds = time.time() - t0
            method.after_epoch(model, epoch)
            test = evaluate(model, batches.test_batches())
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
            records.append(rec)
            append_record(metrics_path, rec)
            if pbatch is not None and epoch % probes["every"] == 0:
                prec = _probe_record(model, pbatch, probes, epoch)
                records.append(prec)
                append_record(metrics_path, prec)
            log(
                f"{tag} epoch {epoch}/{cfg['epochs']} loss {rec['train_loss']:.4f} "
                f"train_err {rec['train_error']:.2f}% test_err {rec['test_error']:.2f}% ({rec['seconds']:.1f}s)"
            )
        prior_seconds += time.time() - t0
        save_atomic(
            {
                "config": cfg,
                "epoch": epoch,
                "step": step,
                "records": records,
                "train_seconds": prior_seconds,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "method": method.state_dict(),
                "generator": gen.get_state(),
                "torch_rng": torch.get_rng_state(),
            },
            resume_path,
        )

    # A diverged run of the fast engine kept stepping until its check: its weights may be non-finite, and a
    # constraint's final projection (an SVD) is then meaningless; such a run records no constraints.
    finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    constraints = method.finalize(model) if status != "diverged" or finite else []
    final = {
        "model": model.state_dict(),
        "constraints": constraints,
        "config": cfg,
        "epoch": len([r for r in records if r["kind"] == "epoch"]),
        "status": status,
    }
    save_atomic(final, out / "checkpoint.pt")
    prov = provenance(device, cfg["seed"])
    prov.update(
        status=status,
        train_seconds=prior_seconds,
        wall_seconds=time.time() - t_start,
        engine=stepper.describe(),
        precision_validated=bf16_validated(cfg),
        pack=pack,
        started=time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t_start)),
    )
    write_json_atomic(out / "provenance.json", prov)
    for p in (resume_path, resume_path.with_name(resume_path.name + ".prev")):
        p.unlink(missing_ok=True)
    return {k: v for k, v in final.items() if k != "model"}
