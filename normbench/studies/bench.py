"""``normbench bench``: the eager training loop against the fast engine, measured in one run on one device.

For each model (with the method it trains with: ``procresnet166:procrustes`` projects every 2 steps, as in
training) and precision, both engines of :mod:`normbench.training.engine` train the same network, from the same
initialisation, on the same data shape: synthetic uint8 images of CIFAR shape (3x32x32, 10 classes, random
pixels and labels), held on the device and augmented there per batch exactly as the trainer does (4-px pad and
crop, flips, normalisation), with the CIFAR recipe's optimizer (SGD, lr 0.1, momentum 0.9, weight decay 1e-4).
After ``warmup`` untimed steps (the fast engine's eager warm-up and CUDA-graph capture happen there), ``steps``
steps are timed, the device synchronised at both ends. Reported: images/s, seconds per CIFAR epoch of 50,000
images (50,000 / images/s; evaluation not included), and the ratio to the eager fp32 loop of the same model.
With ``packs``, the fast engine is also timed with several seeds trained in one process (:mod:`normbench.training.pack`,
``engine.pack``): images/s then counts the images of every packed seed.

:func:`validate_bf16` is the measured run that gates bf16: it trains one configured run twice, fp32 and bf16,
on the same short schedule and writes a verdict JSON (``passed`` when the final test errors differ by at most
``tolerance`` percentage points and neither run diverged); a run config's ``engine.bf16_validation`` names it.
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from normbench.methods import build_method
from normbench.models import build_model
from normbench.training.batches import TensorBatches
from normbench.training.data import ImageData
from normbench.training.engine import build_step
from normbench.training.pack import interleave
from normbench.training.provenance import device_description

DEFAULT_MODELS = ("preact_resnet164", "procresnet166:procrustes")
CIFAR_TRAIN = 50_000
RECIPE = {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4}
DATA_NOTE = (
    "synthetic uint8 images of CIFAR shape (3x32x32, 10 classes) on the device, augmented per batch "
    "(pad 4 + crop, flip) and normalised there"
)


def synthetic_data(n: int, size: int = 32, channels: int = 3, classes: int = 10, seed: int = 0) -> ImageData:
    """``n`` random uint8 images and labels of the given shape (train and test alike)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return ImageData("synthetic", x, y, x[:8], y[:8], classes, (0.5,) * channels, (0.25,) * channels)


def _cycle(batches: TensorBatches, gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    while True:
        yield from batches.train_epoch(gen, drop_last=True)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_engine(
    model_name: str,
    engine: str,
    precision: str = "fp32",
    device: str | torch.device = "cpu",
    batch_size: int = 128,
    steps: int = 20,
    warmup: int = 5,
    method: str = "none",
    deterministic: bool = False,
    pack: int = 1,
) -> dict[str, Any]:
    """Images per second of ``steps`` training steps of one engine (after ``warmup`` untimed steps).

    With ``pack`` > 1, that many copies (seeds 0, 1, ...) train in one process with their steps interleaved,
    each on its own CUDA stream (:mod:`normbench.training.pack`); images/s counts the images of all of them.
    """
    device = torch.device(device)
    benchmark = torch.backends.cudnn.benchmark  # the fast engine may switch autotuning on: restored below
    try:
        return _time_engine(
            model_name, engine, precision, device, batch_size, steps, warmup, method, deterministic, pack
        )
    finally:
        torch.backends.cudnn.benchmark = benchmark


def _stepper(model_name, engine, precision, device, method, deterministic, seed, data):
    torch.manual_seed(seed)
    model = build_model(model_name, num_classes=data.num_classes, in_channels=data.channels)
    meth = build_method(method)
    meth.attach(model)
    model.to(device)
    stepper = build_step({"name": engine, "precision": precision}, model, meth, RECIPE, deterministic)
    model.train()
    stepper.set_lr(RECIPE["lr"])
    return stepper


def _steps(stepper, batches: Iterator, n: int):
    """``n`` steps of one stepper, yielding after each (a member of :func:`normbench.training.pack.interleave`)."""
    stepper.start_epoch()
    for _ in range(n):
        stepper.step(*next(batches))
        yield
    return stepper.end_epoch()  # reads the device-side totals: a synchronisation


def _time_engine(
    model_name, engine, precision, device, batch_size, steps, warmup, method, deterministic, pack
):
    data = synthetic_data(batch_size * 4)
    batches = TensorBatches(data, device, batch_size, {"pad": 4, "flip": True})
    steppers = [
        _stepper(model_name, engine, precision, device, method, deterministic, seed, data)
        for seed in range(pack)
    ]
    its = [_cycle(batches, torch.Generator().manual_seed(seed)) for seed in range(pack)]
    interleave([_steps(s, it, warmup) for s, it in zip(steppers, its, strict=True)], device)
    _sync(device)
    t0 = time.perf_counter()
    stats = interleave([_steps(s, it, steps) for s, it in zip(steppers, its, strict=True)], device)
    _sync(device)
    seconds = time.perf_counter() - t0
    ips = pack * steps * batch_size / seconds
    return {
        "model": model_name,
        "method": method,
        "engine": engine,
        "engine_detail": steppers[0].describe()["engine"] + (f", {pack} seeds packed" if pack > 1 else ""),
        "precision": precision,
        "pack": pack,
        "images_per_s": ips,
        "seconds_per_epoch": CIFAR_TRAIN / ips,
        "step_ms": 1000.0 * seconds / (steps * pack),
        "steps": steps,
        "warmup": warmup,
        "train_loss": sum(st.loss_sum for st in stats) / max(sum(st.seen for st in stats), 1),
    }


def run_bench(
    models: list[str] | tuple[str, ...] = DEFAULT_MODELS,
    device: str = "auto",
    batch_size: int = 128,
    steps: int = 20,
    warmup: int = 5,
    precisions: list[str] | tuple[str, ...] = ("fp32",),
    deterministic: bool = False,
    repeats: int = 1,
    packs: list[int] | tuple[int, ...] = (),
) -> dict[str, Any]:
    """Eager and fast engine for every model (``name`` or ``name:method``) and precision; ratios to eager fp32.

    Each ``k`` > 1 of ``packs`` adds the fast engine with ``k`` seeds packed in the process (images/s of all
    of them). With ``repeats`` > 1 the variants are timed alternately that many times and each keeps its
    fastest timing (a shared machine's load then penalises none of them systematically)."""
    variants = [("eager", 1), ("fast", 1), *[("fast", k) for k in dict.fromkeys(packs) if k > 1]]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    rows = []
    for spec in models:
        name, _, method = spec.partition(":")
        base = None
        for precision in dict.fromkeys(["fp32", *precisions]):
            best: dict[tuple[str, int], dict[str, Any]] = {}
            for _ in range(max(1, repeats)):
                for engine, pack in variants:
                    row = time_engine(
                        name,
                        engine,
                        precision,
                        dev,
                        batch_size,
                        steps,
                        warmup,
                        method or "none",
                        deterministic,
                        pack,
                    )
                    key = (engine, pack)
                    if key not in best or row["images_per_s"] > best[key]["images_per_s"]:
                        best[key] = row
            for key in variants:
                row = best[key]
                base = base or row["images_per_s"]
                row["ratio"] = row["images_per_s"] / base
                rows.append(row)
    return {
        "device": device_description(dev),
        "device_type": dev.type,
        "torch": torch.__version__,
        "data": DATA_NOTE,
        "batch_size": batch_size,
        "steps": steps,
        "warmup": warmup,
        "deterministic": deterministic,
        "repeats": max(1, repeats),
        "recipe": RECIPE,
        "rows": rows,
    }


def format_table(result: dict[str, Any]) -> str:
    """The measured rows as a Markdown table, with the device and data named above it."""
    from tabulate import tabulate

    rows = [
        [
            r["model"] + (f" ({r['method']})" if r["method"] != "none" else ""),
            r["engine_detail"],
            r["precision"],
            f"{r['images_per_s']:.0f}",
            f"{r['seconds_per_epoch']:.1f}",
            f"{r['ratio']:.2f}x",
        ]
        for r in result["rows"]
    ]
    head = (
        f"device: {result['device']}; batch {result['batch_size']}, {result['steps']} timed steps after "
        f"{result['warmup']} warm-up steps (best of {result['repeats']}); data: {result['data']}\n\n"
    )
    headers = ["model", "engine", "precision", "images/s", "s / CIFAR epoch", "vs eager fp32"]
    return head + tabulate(rows, headers=headers, tablefmt="github")


def validate_bf16(
    cfg: dict[str, Any],
    out: str | Path,
    epochs: int | None = None,
    tolerance: float = 1.0,
    data_path: str | Path | None = None,
    work_dir: str | Path | None = None,
    log=print,
) -> dict[str, Any]:
    """Train run config ``cfg`` in fp32 and in bf16 (same seed, engine and schedule, ``epochs`` if given) and
    write the verdict to ``out``: ``passed`` when neither diverged and their test errors, each averaged over
    the last quarter of the epochs (at least the last one; on a short schedule one epoch's error swings by
    points), differ by at most ``tolerance`` percentage points. Returns the verdict."""
    from normbench.runs.folder import read_records, summarize
    from normbench.training.trainer import select_device, train_run

    work = Path(work_dir or tempfile.mkdtemp(prefix="bf16-validation-"))
    results = {}
    for precision in ("fp32", "bf16"):
        run = copy.deepcopy(cfg)
        run.setdefault("engine", {})["precision"] = precision
        run["engine"]["bf16_validation"] = None
        if epochs is not None:
            run["epochs"] = int(epochs)
        train_run(run, work / precision, data_path=data_path, log=log)
        records = read_records(work / precision / "metrics.jsonl")
        summary = summarize(records)
        errors = [r["test_error"] for r in records if r["kind"] == "epoch"]
        tail = errors[-max(1, len(errors) // 4) :]
        results[precision] = {
            "final_test_error": summary["final_test_error"],
            "tail_test_error": sum(tail) / len(tail) if tail else float("nan"),
            "tail_epochs": len(tail),
            "diverged": summary["diverged"],
            "epoch_train_seconds": summary["epoch_train_seconds"],
        }
    diff = results["bf16"]["tail_test_error"] - results["fp32"]["tail_test_error"]
    passed = not results["fp32"]["diverged"] and not results["bf16"]["diverged"] and abs(diff) <= tolerance
    verdict = {
        "arch": cfg.get("arch", cfg["model"]),
        "model": cfg["model"],
        "method": cfg["method"],
        "dataset": cfg["dataset"],
        "seed": cfg["seed"],
        "epochs": int(epochs if epochs is not None else cfg["epochs"]),
        "engine": cfg.get("engine", {}).get("name", "eager"),
        "fp32": results["fp32"],
        "bf16": results["bf16"],
        "statistic": "test error (%) averaged over the last tail_epochs epochs, bf16 minus fp32",
        "difference_pp": diff,
        "tolerance_pp": tolerance,
        "passed": bool(passed),
        "device": device_description(select_device(cfg["device"])),
    }
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(verdict, indent=2, sort_keys=True) + "\n")
    return verdict
