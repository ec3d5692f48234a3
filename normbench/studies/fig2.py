"""The Fig. 2 study of Zaeemzadeh et al. (Sec. 3): the gradient-norm ratio of a 3x3 Conv-ReLU layer over a grid of
input channels ``c`` and output channels ``d``, with and without the projection, at the 10th training epoch.

An experiment with a ``grid: {c: [...], d: [...]}`` block (schema: ``workflow/schemas/config.schema.yaml``) is a
Fig. 2 study. Its runs are the usual (experiment, model, method, seed) of the configuration, model
``fig2_probe`` (the registry's 3-layer network, :func:`normbench.models.fig2net.fig2_network`), methods
``none`` and ``procrustes``; one run trains the network of every grid cell with that method and seed
(:func:`train_cell`, through the trainer's own engine step and evaluation), under the experiment's data set, epochs, batch size,
optimizer (SGD: lr, momentum, weight decay) and augmentation, and writes a run folder like the trainer's:

- ``config.json``: the run config (:func:`normbench.config.run_config`) plus ``grid``;
- ``provenance.json``;
- ``metrics.jsonl``: one ``epoch`` record at the last epoch holding the mean over the grid's cells of the
  train/test loss and error (``"cells"`` says how many), and one ``probe`` record at the last epoch whose
  ``grad_norm_ratio`` lists one record per cell: the block record of
  :func:`~normbench.probes.gradients.block_grad_norm_ratios` for the 3x3 Conv-ReLU layer plus ``c``, ``d``
  and the cell's own train/test loss and error.

So tables, claims (``fig2_projection_closer_to_one`` compares the runs' median |log ratio| over the grid) and
the heat-map figure (:func:`normbench.outputs.figures.plot_fig2_grid`) read it as any run. The Snakemake rule
``fig2_run`` (``workflow/rules/fig2.smk``) builds these runs in place of ``train``; by hand::

    normbench fig2 --config config/smoke.yaml --experiment zaeemzadeh2020_fig2 --method procrustes --seed 0
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from normbench.config import RunSpec, results_dir, run_config
from normbench.runs.folder import append_record, write_json_atomic

Batch = tuple[torch.Tensor, torch.Tensor]
SGD = {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4}
"""Sec. 4's recipe, the default of :func:`train_cell`."""


def train_cell(
    c: int,
    d: int,
    train_batches: Sequence[Batch] | Callable[[], Iterable[Batch]],
    probe_batch: Batch,
    method: Any = None,
    epochs: int = 10,
    optimizer: dict[str, Any] | None = None,
    seed: int = 0,
    relu: bool = True,
    num_classes: int = 10,
    test_batches: Callable[[], Iterable[Batch]] | None = None,
    engine: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One cell of Fig. 2: train the 3-layer network ``(c, d)``, then measure its middle Conv-ReLU layer.

    The network (:func:`normbench.models.fig2net.fig2_network`) is built under ``torch.manual_seed(seed)``;
    after one no-grad forward pass (each ``ProjectedConv2d`` records its input grid) the method is attached,
    and the network trains for ``epochs`` passes over ``train_batches`` (a re-iterable sequence, or a callable
    returning one epoch's batches) with the trainer's engine step (:func:`normbench.training.engine.build_step`:
    forward, cross-entropy plus the method's loss term, backward, ``optimizer`` (default :data:`SGD`: Sec. 4's
    lr 0.1, momentum 0.9, weight decay 1e-4, kept only if the method uses weight decay), ``after_step``) and
    ``after_epoch``. It stops at the first non-finite loss (``"diverged"``: that iteration). Then the
    gradient-norm ratio ``||dE/dx_{l+1}|| / ||dE/dx_l||`` of the block on ``probe_batch``
    (:func:`~normbench.probes.gradients.block_grad_norm_ratios`) and, with ``test_batches``, the trainer's
    evaluation (:func:`normbench.training.trainer.evaluate`).

    Returns ``{"c", "d", "projected", "steps", "ratio", "grad_norm_in", "grad_norm_out", "in_shape",
    "out_shape", "ratio_per_sample_mean", "train_loss", "train_error"}`` (the last epoch's running means, error
    in %), plus the evaluation's ``"test_loss", "test_error", "test_top5_error"``.
    """
    from normbench.methods import build_method
    from normbench.models.fig2net import fig2_network
    from normbench.probes.gradients import block_grad_norm_ratios
    from normbench.training.engine import build_step
    from normbench.training.trainer import evaluate

    method = build_method("none") if method is None else method
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = fig2_network(c, d, in_channels=probe_batch[0].shape[1], num_classes=num_classes, relu=relu)
        net.to(probe_batch[0].device)
        with torch.no_grad():
            net(probe_batch[0])  # each ProjectedConv2d records its input grid
        method.attach(net)
        step = build_step(engine or {"name": "eager"}, net, method, {**SGD, **(optimizer or {})})
        stats, diverged = _train(net, step, method, train_batches, epochs)
        rec = block_grad_norm_ratios(net, probe_batch, blocks=[net.block])[0]
        out = {
            "c": c,
            "d": d,
            "projected": method.name != "none",
            "steps": step.step_count,
            **{k: rec[k] for k in ("ratio", "grad_norm_in", "grad_norm_out", "ratio_per_sample_mean")},
            "in_shape": rec["in_shape"],
            "out_shape": rec["out_shape"],
            "train_loss": stats.loss_sum / stats.seen if stats.seen else math.nan,
            "train_error": 100.0 * stats.wrong / stats.seen if stats.seen else math.nan,
        }
        if diverged is not None:
            out["diverged"] = diverged
        if test_batches is not None:
            out.update(evaluate(net, test_batches()))
            net.train()
    return out


def _train(net, step, method, train_batches, epochs: int):
    """``epochs`` passes of ``step`` over the batches; (the last epoch's totals, the diverged iteration)."""
    from normbench.training.engine import EpochStats

    net.train()
    stats = EpochStats()
    for epoch in range(1, epochs + 1):
        step.start_epoch()
        for xb, yb in train_batches() if callable(train_batches) else train_batches:
            if not step.step(xb.to(_device(net)), yb.to(_device(net))):
                return step.end_epoch(), step.end_epoch().diverged["iteration"]
        stats = step.end_epoch()
        method.after_epoch(net, epoch)
    return stats, None


def _device(net: torch.nn.Module) -> torch.device:
    return next(net.parameters()).device


def fig2_grid(
    cs: Sequence[int],
    ds: Sequence[int],
    train_batches: Sequence[Batch] | Callable[[], Iterable[Batch]],
    probe_batch: Batch,
    runs: int = 10,
    method: Callable[[], Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """The ratio grid of Zaeemzadeh et al., Fig. 2 (one panel): ``mean[i][j]`` is the mean over ``runs``
    seeds (0..runs-1) of :func:`train_cell` for ``c = cs[i]``, ``d = ds[j]``; ``ratios[i][j]`` lists the
    runs. ``method`` builds a fresh method per cell (``None``: unconstrained); call it with and without the
    projection for panels (a) and (b). Extra keyword arguments go to :func:`train_cell`."""
    ratios = [
        [
            [
                train_cell(c, d, train_batches, probe_batch, method() if method else None, seed=s, **kwargs)[
                    "ratio"
                ]
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
        "projected": method is not None,
        "mean": mean,
        "ratios": ratios,
    }


def grid_run_config(config: dict, spec: RunSpec) -> dict:
    """The resolved config of one Fig. 2 study run: the trainer's run config plus the experiment's grid."""
    grid = config["experiments"][spec.experiment].get("grid")
    if not grid:
        raise ValueError(f"experiment {spec.experiment!r} has no grid: it is not a Fig. 2 study")
    return {**run_config(config, spec), "grid": {"c": list(grid["c"]), "d": list(grid["d"])}}


def grid_run(
    cfg: dict[str, Any],
    out_dir: str | Path,
    data_path: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train every (c, d) cell of ``cfg["grid"]`` with ``cfg``'s method and seed; write the run folder."""
    from normbench.training.provenance import provenance
    from normbench.training.trainer import open_data

    t_start = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg["optimizer"]["name"] != "sgd":
        raise ValueError(f"the Fig. 2 study trains with SGD (Sec. 4), not {cfg['optimizer']['name']!r}")
    device, data, batches = open_data(cfg, data_path)
    write_json_atomic(out / "config.json", cfg)
    metrics = out / "metrics.jsonl"
    metrics.unlink(missing_ok=True)  # a rerun starts the log afresh
    cells = _train_grid(cfg, batches, data.num_classes, log)
    _write_grid_records(metrics, cfg, cells, time.time() - t_start)
    prov = provenance(device, cfg["seed"])
    prov.update(
        status="completed",
        train_seconds=sum(r["seconds"] for r in cells),
        wall_seconds=time.time() - t_start,
        started=time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t_start)),
    )
    write_json_atomic(out / "provenance.json", prov)
    return {"status": "completed", "epoch": cfg["epochs"], "cells": len(cells)}


def _train_grid(cfg: dict[str, Any], batches, num_classes: int, log: Callable[[str], None]) -> list[dict]:
    """One :func:`train_cell` per (c, d), each with the same data order; the cell records, in grid order."""
    from normbench.methods import build_method

    probe = batches.probe_batch(cfg["probes"]["batch"])
    cells = []
    for c in cfg["grid"]["c"]:
        for d in cfg["grid"]["d"]:
            gen = torch.Generator().manual_seed(cfg["seed"])  # the same data order in every cell
            t0 = time.time()
            rec = train_cell(
                c,
                d,
                lambda gen=gen: batches.train_epoch(gen),
                probe,
                build_method(cfg["method"], cfg["method_options"]),
                epochs=cfg["epochs"],
                optimizer=cfg["optimizer"],
                seed=cfg["seed"],
                num_classes=num_classes,
                test_batches=batches.test_batches,
            )
            index = len(cells)
            cells.append({"index": index, "name": f"c{c}_d{d}", "transition": c != d, **rec,
                          "seconds": time.time() - t0})  # fmt: skip
            tag = f"{cfg['experiment']}/{cfg['method']}/seed{cfg['seed']}"
            log(f"[{tag}] cell {index + 1}/{len(cfg['grid']['c']) * len(cfg['grid']['d'])} c={c} d={d}: "
                f"ratio {rec['ratio']:.4g}")  # fmt: skip
    return cells


def _write_grid_records(metrics: Path, cfg: dict[str, Any], cells: list[dict], seconds: float) -> None:
    """The study's log: one epoch record of the grid means, one probe record listing every cell."""
    from normbench.runs.records import json_safe

    keys = ("train_loss", "train_error", "test_loss", "test_error")
    means = {k: sum(r[k] for r in cells) / len(cells) for k in keys}
    epoch = {"kind": "epoch", "epoch": cfg["epochs"], "cells": len(cells), **means, "seconds": seconds}
    append_record(metrics, json_safe(epoch))
    probe_rec = {
        "kind": "probe",
        "epoch": cfg["epochs"],
        "probes": {"grad_norm_ratio": cells},
        "seconds": {"grad_norm_ratio": sum(r["seconds"] for r in cells)},
    }
    append_record(metrics, json_safe(probe_rec))


def default_out(config: dict, spec: RunSpec) -> Path:
    return results_dir(config) / "runs" / spec.path
