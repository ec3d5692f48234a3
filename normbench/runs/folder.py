"""Run folders on disk: the append-only metrics log, resolved config, and per-run summaries.

A run folder (``<results>/<name>/runs/<experiment>/<model>/<method>/seed<k>/``) holds
``config.json`` (resolved run config), ``provenance.json``, ``metrics.jsonl`` and ``checkpoint.pt``.
``metrics.jsonl`` has one JSON object per line:

- ``{"kind": "epoch", "epoch", "lr", "train_loss", "train_error", "test_loss", "test_error", "seconds"}``
  per epoch; errors are percentages (0-100), losses are mean cross-entropy (nats);
- ``{"kind": "diverged", "epoch", "iteration", "reason"}`` once if training stopped on a non-finite loss;
- ``{"kind": "eval_health", "epoch", "test_loss", "reason"}`` before an epoch record whose evaluation was
  unhealthy (a non-finite test loss, or one above 100 x ln(num_classes): ``trainer.eval_health``).

Tables, figures and comparisons are built from these files alone.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any

from normbench.runs.records import as_float, check_record, record_line


def with_filename(err: OSError, path: str | Path) -> OSError:
    """``err`` naming ``path`` (a failed write() or fsync() of an open file names none)."""
    if err.filename is None and err.errno is not None:
        err.filename = str(path)
    return err


def temp_path(path: str | Path) -> Path:
    """A temporary file beside ``path`` that no other process uses: ``<name>.<pid>-<random>.tmp``."""
    path = Path(path)
    return path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


DISK_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EIO)


def append_record(path: str | Path, record: dict[str, Any]) -> None:
    """Append one JSON line and make it durable (flush + fsync) before returning."""
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(record_line(record))
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as err:
        raise with_filename(err, path) from None


def read_records(path: str | Path, allow_partial_last: bool = True) -> list[dict[str, Any]]:
    """Read a metrics log; any bad line is an error naming the file and line, except, with
    ``allow_partial_last`` (a log being written or resumed), a truncated last line (a killed writer), which is
    ignored. A finished run's log is read with ``allow_partial_last=False`` (:func:`load_run`). Every record is
    checked against the record schema (:func:`~normbench.runs.records.check_record`): a record of an unknown
    kind or with a wrong field is a :class:`~normbench.runs.records.RecordError` naming file, line and field."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if allow_partial_last and i == len(lines) - 1:
                break
            raise ValueError(f"{path}:{i + 1}: not a JSON record ({err})") from err
        check_record(record, f"{path}:{i + 1}")
        records.append(record)
    return records


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as JSON to a unique temporary file and rename it into place; on an error (a full
    disk, ...) the temporary file is removed and the error names ``path``."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        tmp.write_text(json.dumps(obj, sort_keys=True, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise with_filename(err, path) from None


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-run quantities the papers report, from the epoch records of one run.

    - ``final_test_error``/``final_train_error``: at the last epoch (%);
    - ``best_test_error``: minimum test error over epochs (%);
    - ``gap_mean``/``gap_max``: generalization gap g_t = test_error_t - train_error_t (percentage points),
      averaged and maximised over the epochs run (Zaeemzadeh et al. 2020, Table 1);
    - ``gap_fluctuation`` = gap_max - gap_mean; ``test_accuracy``/``train_accuracy`` = 100 - final error;
    - ``epoch_train_seconds``: mean training time per epoch (steps x seconds per step, no evaluation);
    - ``final_test_top5_error``: top-5 test error at the last epoch (%; ImageNet tables);
    - ``final_test_loss``, ``final_train_loss`` (mean training cross-entropy of the last epoch),
      ``epochs`` (epochs completed), ``diverged`` (bool) and ``diverged_epoch``;
    - ``eval_unhealthy``: the number of unhealthy evaluations (``eval_health`` records) and
      ``eval_unhealthy_epochs`` their epochs;
    - ``relu_nonzero_fraction``: the share (%) of non-zero ReLU outputs at the last ``relu_nonzero`` probe
      record of the epoch schedule (only when the run records that probe).
    A diverged run's error quantities are NaN: it has no meaningful final error.
    """
    epochs = [r for r in records if r.get("kind") == "epoch"]
    div = next((r for r in records if r.get("kind") == "diverged"), None)
    unhealthy = [r["epoch"] for r in records if r.get("kind") == "eval_health"]
    out: dict[str, Any] = {
        "epochs": len(epochs),
        "diverged": div is not None,
        "diverged_epoch": div["epoch"] if div else None,
        "eval_unhealthy": len(unhealthy),
        "eval_unhealthy_epochs": unhealthy,
    }
    nan = float("nan")
    if not epochs or div is not None:
        out.update(dict.fromkeys(METRICS, nan))
        return out
    gaps = [r["test_error"] - r["train_error"] for r in epochs]
    last = epochs[-1]
    out.update(
        final_test_error=last["test_error"],
        final_train_error=last["train_error"],
        best_test_error=min(r["test_error"] for r in epochs),
        gap_mean=mean(gaps),
        gap_max=max(gaps),
        gap_fluctuation=max(gaps) - mean(gaps),
        final_test_loss=last["test_loss"],
        final_train_loss=last["train_loss"],
        final_test_top5_error=last.get("test_top5_error", float("nan")),
        test_accuracy=100.0 - last["test_error"],
        train_accuracy=100.0 - last["train_error"],
        epoch_train_seconds=mean(r.get("step_seconds", float("nan")) * r.get("steps", 0) for r in epochs),
    )
    relu = probe_records(records, "relu_nonzero")
    if relu:  # Xie footnote 3, at the last epoch-schedule probe (only runs that record it have the key)
        out["relu_nonzero_fraction"] = as_float(relu[-1]["probes"]["relu_nonzero"]["percent"])
    return out


def without_timing(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records with their wall-clock fields (any key ending in "seconds", at any depth, e.g. a probe
    record's per-probe ``seconds``) removed: what must be identical between two runs of one seed."""

    def clean(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items() if not k.endswith("seconds")}
        return [clean(v) for v in x] if isinstance(x, list) else x

    return [clean(r) for r in records]


DATASET_SHAPES: dict[str, tuple[int, int]] = {
    "digits": (10, 1),
    "mnist": (10, 1),
    "cifar10": (10, 3),
    "cifar100": (100, 3),
    "imagenet": (1000, 3),
}
"""(classes, input channels) of every data set a run can name: the one source of these facts, read by the
data loaders (:mod:`normbench.training.data`), the structure rows and the claims' chance levels."""

STREAMED_DATASETS = frozenset({"imagenet"})
"""Data sets read from image folders batch by batch (crops, no padding) rather than held in memory: read by
the loaders and by the protocol check (which names their crop)."""


METRICS = (
    "final_test_error",
    "best_test_error",
    "final_train_error",
    "gap_mean",
    "gap_max",
    "gap_fluctuation",
    "final_test_loss",
    "final_train_loss",
    "final_test_top5_error",
    "test_accuracy",
    "train_accuracy",
    "epoch_train_seconds",
)


@dataclass
class Run:
    path: Path
    config: dict[str, Any]
    records: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)
    damaged: str = ""  # why its log could not be read (load_runs with on_damaged): no records then

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.config["experiment"], self.config["model"], self.config["method"])

    def probes(self, name: str, iterations: bool = False) -> list[dict[str, Any]]:
        """:func:`probe_records` of this run."""
        return probe_records(self.records, name, iterations)


def probe_records(records: list[dict[str, Any]], name: str, iterations: bool = False) -> list[dict[str, Any]]:
    """The probe records holding probe ``name``, in log order: those of the epoch schedule (epoch 0 and every
    ``probes.every`` epochs), plus, with ``iterations``, those of the iteration schedule (the records with an
    ``"iteration"``, taken inside their epoch)."""
    return [
        r
        for r in records
        if r.get("kind") == "probe"
        and name in (r.get("probes") or {})
        and (iterations or r.get("iteration") is None)
    ]


def probe_iterations(run: Run, name: str):
    """Yield (epoch, iteration, result) of every ``name`` probe record of ``run``. The iteration is the
    record's own ``iteration`` where the trainer wrote one (an iteration schedule), else the training steps
    of the epochs up to the record's (the epoch records' ``steps``; 0 at the initialisation record), else
    ``None``. In iteration order; of two records at the same iteration (an iteration-schedule record at an
    epoch's last step and that epoch's own record) only the first is kept."""
    steps, total, known = {}, 0, True
    for rec in run.records:
        if rec.get("kind") == "epoch":
            if "steps" in rec and known:
                total += int(rec["steps"])
            else:
                known = False
            steps[rec["epoch"]] = total if known else None
    seen = set()
    for rec in run.probes(name, iterations=True):
        if rec.get("iteration") is not None:
            it = int(rec["iteration"])
        elif rec["epoch"] == 0:
            it = 0
        else:
            it = steps.get(rec["epoch"])
        if it is not None and it in seen:
            continue
        seen.add(it)
        yield rec["epoch"], it, rec["probes"][name]


def first_lr_drop(run: Run) -> int | None:
    """The iteration at which the learning rate is first divided (the end of the epoch before the first
    epoch with a smaller rate), from the epoch records; ``None`` when it never drops or steps are unknown."""
    total, prev = 0, None
    for rec in run.records:
        if rec.get("kind") != "epoch":
            continue
        lr = as_float(rec.get("lr"))
        if prev is not None and lr < prev * 0.99:
            return total
        if "steps" not in rec:
            return None
        total += int(rec["steps"])
        prev = lr
    return None


class ConfigUnreadable(ValueError):
    """A run folder whose ``config.json`` cannot be read."""


def _read_config(metrics_path: Path) -> dict[str, Any]:
    cfg_path = metrics_path.with_name("config.json")
    try:
        return json.loads(cfg_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigUnreadable(f"run {metrics_path.parent}: cannot read {cfg_path.name} ({err})") from err


def load_run(metrics_path: str | Path) -> Run:
    """Load one run from its ``metrics.jsonl`` and the ``config.json`` beside it."""
    metrics_path = Path(metrics_path)
    config = _read_config(metrics_path)
    records = read_records(metrics_path, allow_partial_last=False)
    return Run(metrics_path.parent, config, records, summarize(records))


def find_metrics(paths: list[str | Path]) -> list[Path]:
    """Expand folders into the ``metrics.jsonl`` files below them; keep files as given.

    Folders put aside by ``normbench train --force`` (``<folder>.old-<timestamp>``) are skipped.
    """
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(
                m
                for m in p.rglob("metrics.jsonl")
                if not any(".old-" in part for part in m.relative_to(p).parts)
            )
        else:
            found.append(p)
    return found


def load_runs(paths: list[str | Path], on_damaged: Callable[[str], None] | None = None) -> list[Run]:
    """Load every run below ``paths``. A log that cannot be read is an error, unless ``on_damaged`` is given:
    then it is called with the error (naming the file, line and field) and the run is kept as a *damaged*
    run, with its config and no records, so that the verdicts count and exclude it
    (:mod:`normbench.verdicts.accounting`). A run whose ``config.json`` cannot be read is an error either way:
    nothing could say which row it belongs to."""
    runs = []
    for path in find_metrics(paths):
        try:
            runs.append(load_run(path))
        except ValueError as err:
            config = _read_config(Path(path))  # raises for an unreadable config.json
            if on_damaged is None:
                raise
            on_damaged(str(err))
            runs.append(Run(Path(path).parent, config, [], summarize([]), damaged=str(err)))
    return runs
