"""The Fig. 2 study of Zaeemzadeh et al. (Sec. 3): the gradient-norm ratio of a 3x3 Conv-ReLU layer over a grid of
input channels ``c`` and output channels ``d``, with and without the projection, at the 10th training epoch.

An experiment with a ``grid: {c: [...], d: [...]}`` block (schema: ``workflow/schemas/config.schema.yaml``) is a
Fig. 2 study. Its runs are the usual (experiment, model, method, seed) of the configuration, model
``fig2_probe`` (the registry's 3-layer network, :func:`normbench.probes.gradients.fig2_network`), methods
``none`` and ``procrustes``; one run trains the network of every grid cell with that method and seed
(:func:`normbench.probes.gradients.fig2_ratio`), under the experiment's data set, epochs, batch size,
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

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from normbench.config import RunSpec, results_dir, run_config
from normbench.runs.folder import append_record, write_json_atomic


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
    from normbench.methods import build_method
    from normbench.probes import json_safe
    from normbench.probes.gradients import fig2_ratio
    from normbench.training.provenance import provenance
    from normbench.training.trainer import open_data

    t_start = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    opt = cfg["optimizer"]
    if opt["name"] != "sgd":
        raise ValueError(f"the Fig. 2 study trains with SGD (Sec. 4), not {opt['name']!r}")
    device, data, batches = open_data(cfg, data_path)
    probe = batches.probe_batch(cfg["probes"]["batch"])
    write_json_atomic(out / "config.json", cfg)
    metrics = out / "metrics.jsonl"
    metrics.unlink(missing_ok=True)  # a rerun starts the log afresh

    cells = []
    for c in cfg["grid"]["c"]:
        for d in cfg["grid"]["d"]:
            gen = torch.Generator().manual_seed(cfg["seed"])  # the same data order in every cell
            t0 = time.time()
            rec = fig2_ratio(
                c,
                d,
                lambda gen=gen: batches.train_epoch(gen),
                probe,
                epochs=cfg["epochs"],
                lr=opt["lr"],
                momentum=opt["momentum"],
                weight_decay=opt["weight_decay"],
                seed=cfg["seed"],
                num_classes=data.num_classes,
                method=build_method(cfg["method"], cfg["method_options"]),
                test_batches=batches.test_batches,
            )
            rec = {
                "index": len(cells),
                "name": f"c{c}_d{d}",
                "transition": c != d,
                **rec,
                "seconds": time.time() - t0,
            }
            cells.append(rec)
            log(
                f"[{cfg['experiment']}/{cfg['method']}/seed{cfg['seed']}] c={c} d={d}: ratio {rec['ratio']:.4g}"
            )

    def grid_mean(key: str) -> float:
        return sum(r[key] for r in cells) / len(cells)

    keys = ("train_loss", "train_error", "test_loss", "test_error")
    epoch = {"kind": "epoch", "epoch": cfg["epochs"], "cells": len(cells), **{k: grid_mean(k) for k in keys}}
    epoch["seconds"] = time.time() - t_start
    append_record(metrics, json_safe(epoch))
    probe_rec = {
        "kind": "probe",
        "epoch": cfg["epochs"],
        "probes": {"grad_norm_ratio": cells},
        "seconds": {"grad_norm_ratio": sum(r["seconds"] for r in cells)},
    }
    append_record(metrics, json_safe(probe_rec))
    prov = provenance(device, cfg["seed"])
    prov.update(
        status="completed",
        train_seconds=sum(r["seconds"] for r in cells),
        wall_seconds=time.time() - t_start,
        started=time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t_start)),
    )
    write_json_atomic(out / "provenance.json", prov)
    return {"status": "completed", "epoch": cfg["epochs"], "cells": len(cells)}


def default_out(config: dict, spec: RunSpec) -> Path:
    return results_dir(config) / "runs" / spec.path
