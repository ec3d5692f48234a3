"""Figures in the papers' layouts, from hand-made run records; the Zaeemzadeh Fig. 2 study end to end at a tiny
grid (digits, 1 epoch, 2 cells, both methods: a few seconds on a CPU)."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from conftest import TINY_EXPERIMENT, epoch_records

import normbench.outputs.figures as figures
import normbench.outputs.probe_figures as probe_figures
from normbench.runs.folder import Run


def make_run(tmp_path: Path, model: str, seed: int, method: str = "none", **extra) -> Run:
    train = [40.0 - 10 * i + seed for i in range(3)]
    test = [45.0 - 8 * i + seed for i in range(3)]
    records = epoch_records(train, test)
    for i, r in enumerate(records):
        r["train_loss"], r["test_loss"] = 2.0 / (i + 1), 2.2 / (i + 1) + 0.1 * seed
    cfg = {"experiment": "exp", "model": model, "method": method, "seed": seed, "method_options": {}, **extra}
    return Run(tmp_path / f"{model}_{method}_{seed}", cfg, records)


@pytest.fixture
def captured(monkeypatch) -> list:
    """The figures the builders save, as (number of panels, panel titles) before they are closed."""
    seen = []
    save = figures.save_figure

    def spy(fig, out_stem, title=""):
        panels = [ax for ax in fig.axes if ax.get_xlabel() or ax.get_title() or ax.get_ylabel()]
        seen.append((panels, [ax.get_title() for ax in panels]))
        return save(fig, out_stem, title)

    monkeypatch.setattr(figures, "save_figure", spy)
    monkeypatch.setattr(probe_figures, "save_figure", spy)
    return seen


def test_curves_one_column_per_depth(tmp_path, captured):
    models = ["plain20", "plain83", "plain164", "preact_resnet20", "preact_resnet83", "preact_resnet164"]
    runs = [make_run(tmp_path, m, s) for m in models for s in (0, 1)]
    paths = figures.plot_curves(runs, tmp_path / "fig" / "curves", "Fig. 4", {"spread": "range"})
    assert [p.name for p in paths] == ["curves.png", "curves.pdf", "curves.json"] and all(
        p.stat().st_size > 0 for p in paths
    )
    panels, titles = captured[0]
    assert len(panels) == 2 * 3  # rows error and loss, one column per depth
    assert titles[:3] == ["depth 20", "depth 83", "depth 164"]
    assert panels[3].get_yscale() == "log" and panels[0].get_yscale() == "linear"
    legend = [t.get_text() for t in panels[0].figure.legends[0].get_texts()]
    assert legend == [
        "plain",
        "preact_resnet",
        "test",
        "train",
    ]  # depth digits dropped: the depth is the panel


def test_curves_depth_mapping_and_single_panel(tmp_path, captured):
    runs = [make_run(tmp_path, m, 0, "procrustes") for m in ("procresnet22", "procresnet85")]
    runs += [make_run(tmp_path, "plain20", 0)]
    figures.plot_curves(runs, tmp_path / "a", "", {"depths": {"procresnet22": 20, "procresnet85": 83}})
    assert captured[-1][1][:2] == ["depth 20", "depth 83"]  # ProcResNet-22 drawn in the paper's column "20"
    one = [make_run(tmp_path, m, s) for m in ("convnet164", "resnet164") for s in (0, 1)]
    figures.plot_curves(one, tmp_path / "b", "", {"splits": ["train"], "loss_scale": "linear"})
    panels, titles = captured[-1]
    assert len(panels) == 2 and titles == ["", ""]  # one depth: one column (Oyedotun Figs. 3-4)
    assert panels[1].get_yscale() == "linear"
    with pytest.raises(ValueError, match="unknown figure option"):
        figures.plot_curves(one, tmp_path / "c", "", {"colums": 2})


def test_curves_spread_statistics(tmp_path):
    runs = [make_run(tmp_path, "plain20", s) for s in (0, 1, 2)]
    df = figures.curves_frame(runs)
    assert set(df["depth"]) == {20} and set(df["family"]) == {"plain"}
    assert figures.SPREADS["sd"][0] == "sd" and figures.SPREADS["range"][0] == ("pi", 100)


def fig2_runs(tmp_path: Path, config: dict) -> list[Run]:
    from normbench.config import RunSpec, validate_config
    from normbench.runs.folder import load_runs
    from normbench.studies.fig2 import grid_run, grid_run_config

    config = validate_config(config)
    for method in ("none", "procrustes"):
        spec = RunSpec("fig2", "fig2_probe", method, 0)
        grid_run(grid_run_config(config, spec), tmp_path / "runs" / spec.path, log=lambda _: None)
    return load_runs([tmp_path / "runs"])


def test_fig2_study_end_to_end(tmp_path, tiny_config, captured):
    exp = copy.deepcopy(TINY_EXPERIMENT)
    exp.update(
        reproduces=["zaeemzadeh2020/fig2"],
        models=["fig2_probe"],
        methods=["none", "procrustes"],
        method_options={"procrustes": {"every": 1, "gain_factor": 2**0.5}},
        seeds=[0],
        epochs=1,
        grid={"c": [2], "d": [2, 4]},
        probes={"batch": 16},
    )
    tiny_config["experiments"] = {"fig2": exp}
    runs = fig2_runs(tmp_path, tiny_config)
    assert len(runs) == 2 and all(json.loads((r.path / "config.json").read_text())["grid"] for r in runs)
    cells = next(r for r in runs[0].records if r["kind"] == "probe")["probes"]["grad_norm_ratio"]
    assert [(c["c"], c["d"]) for c in cells] == [(2, 2), (2, 4)] and all(c["ratio"] > 0 for c in cells)
    assert runs[0].summary["epochs"] == 1  # the grid mean of the errors: tables read the study as any run

    paths = figures.plot_fig2_grid(runs, tmp_path / "figures" / "fig2" / "fig2_grid", "Fig. 2")
    assert all(p.stat().st_size > 0 for p in paths)
    panels, titles = captured[-1]
    assert [t for t in titles if t] == ["(a) with projection (procrustes)", "(b) without projection"]
    saved = json.loads(paths[-1].read_text())  # what was drawn: each panel's heat-map cells, finite
    assert [len(figures.panel_values(p)) for p in saved["panels"]] == [2, 2]
    assert saved["title"].startswith("Zaeemzadeh et al. 2020, Fig. 2 (proxy: digits)")
    csv = pd.read_csv(tmp_path / "figures" / "fig2" / "fig2_grid.csv")
    assert len(csv) == 4 and set(csv["runs"]) == {1} and set(csv["method"]) == {"none", "procrustes"}

    from normbench.references import load_claims
    from normbench.verdicts.claims import evaluate_claims

    # The paper's claim reads the study's runs (its subjects name the method options the runs use).
    claim = next(c for c in load_claims() if c.id == "fig2_projection_closer_to_one")
    opts = {"procrustes": {"every": 1, "gain_factor": 2**0.5}}
    pairs = [[{**a, "options": opts}, b] for a, b in claim.args["pairs"]]
    result = evaluate_claims([replace(claim, args={**claim.args, "pairs": pairs})], runs)
    assert result["verdict"][0] != "NOT RUN" and "median_abs_log" in claim.args["aggregate"]


def test_figures_cli_layout_and_fig2(tmp_path, tiny_config):
    from normbench.cli.main import main

    runs = [make_run(tmp_path, m, s) for m in ("plain20", "plain83") for s in (0, 1)]
    for run in runs:
        run.path.mkdir(parents=True)
        (run.path / "config.json").write_text(json.dumps(run.config))
        (run.path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in run.records))
    layout = json.dumps({"panels": "depth", "spread": "sd"})
    assert main(["figures", str(tmp_path), "--layout", layout, "--out-dir", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "exp" / "curves.png").is_file()
    assert main(["figures", str(tmp_path), "--figure", "nope", "--out-dir", str(tmp_path / "out")]) == 2


def test_paper_figure_spans_experiments(tmp_path, captured):
    """--out-stem: one figure of the runs of several experiments (Zaeemzadeh Fig. 4: two experiments)."""
    from normbench.cli.main import main

    runs = [make_run(tmp_path, "plain20", 0), make_run(tmp_path, "procresnet22", 0, "procrustes")]
    runs[1].config["experiment"] = "other"
    for run in runs:
        run.path.mkdir(parents=True)
        (run.path / "config.json").write_text(json.dumps(run.config))
        (run.path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in run.records))
    layout = json.dumps({"panels": "depth", "depths": {"procresnet22": 20}})
    stem = tmp_path / "out" / "zaeemzadeh2020" / "fig4"
    assert main(["figures", str(tmp_path), "--layout", layout, "--out-stem", str(stem), "--title", "t"]) == 0
    assert stem.with_suffix(".png").is_file() and stem.with_suffix(".pdf").is_file()
    panels, titles = captured[-1]
    assert len(panels) == 2 and len(titles) == 2  # one depth column (20), error and loss rows
    assert main(["figures", str(tmp_path)]) == 2  # neither --out-dir nor --out-stem


def test_paper_figures_config_is_checked(tiny_config):
    from normbench.config import ConfigError, validate_config

    tiny_config["paper_figures"] = {"zaeemzadeh2020/fig4": {}}
    with pytest.raises(ConfigError, match="paper_figures.zaeemzadeh2020/fig4: no experiment reproduces it"):
        validate_config(tiny_config)
    tiny_config["paper_figures"] = {"zaeemzadeh2020/table1": {"kind": "nope"}}
    with pytest.raises(ConfigError, match="kind: 'nope'; valid: curves"):
        validate_config(tiny_config)
    tiny_config["paper_figures"] = {"zaeemzadeh2020/table1": {"layout": {"spread": "range"}}}
    assert validate_config(tiny_config)["paper_figures"]["zaeemzadeh2020/table1"]["kind"] == "curves"


def test_grad_norm_ratio_figure_rows_by_depth(tmp_path, captured):
    """Zaeemzadeh Fig. 3's grid: one row per depth, one column per architecture."""
    PROBE_FIGURES = probe_figures.PROBE_FIGURES

    def probe(epoch: int) -> dict:
        blocks = [{"index": i, "transition": i == 0, "ratio": 1.0 + 0.1 * i * epoch} for i in range(3)]
        return {"kind": "probe", "epoch": epoch, "probes": {"grad_norm_ratio": blocks}}

    runs = []
    for m in ("plain20", "plain83", "preact_resnet20", "preact_resnet83"):
        run = make_run(tmp_path, m, 0)
        run.records.extend(probe(e) for e in range(3))
        runs.append(run)
    paths = PROBE_FIGURES["grad_norm_ratio"](runs, tmp_path / "grad_norm_ratio", "Fig. 3", None)
    assert all(p.is_file() for p in paths)
    panels, titles = captured[-1]
    assert len(panels) == 2 * 2
    assert titles == [
        "plain, depth 20",
        "preact_resnet, depth 20",
        "plain, depth 83",
        "preact_resnet, depth 83",
    ]
    PROBE_FIGURES["grad_norm_ratio"](runs[:1], tmp_path / "one", "", None)  # one depth: one panel per variant
    assert captured[-1][1] == ["plain20"]
    # the paper figure pools ProcResNet-22 (another experiment) into the depth-20 row through the depths map
    proc = make_run(tmp_path, "procresnet22", 0, "procrustes")
    proc.records.extend(probe(e) for e in range(3))
    layout = {"depths": {"procresnet22": 20}}
    PROBE_FIGURES["grad_norm_ratio"]([*runs, proc], tmp_path / "fig3", "Fig. 3", layout)
    assert captured[-1][1] == [
        "plain, depth 20",
        "preact_resnet, depth 20",
        "procresnet+procrustes, depth 20",
        "plain, depth 83",
        "preact_resnet, depth 83",
        "procresnet+procrustes, depth 83",
    ]


def test_curves_mark_unhealthy_evaluations(tmp_path):
    """An epoch whose evaluation the trainer flagged (eval_health: NaN or absurd test loss) is an x on the top
    edge of each panel of that run's column, in its colour, and the caption counts them; healthy runs: none."""
    sick = make_run(tmp_path, "plain20", 0)
    sick.records[1]["test_loss"] = float("nan")
    sick.records.insert(
        1, {"kind": "eval_health", "epoch": 2, "test_loss": float("nan"), "reason": "not finite"}
    )
    well = make_run(tmp_path, "preact_resnet20", 0)
    data = json.loads(figures.plot_curves([sick, well], tmp_path / "c", "exp")[-1].read_text())
    marks = [p["annotations"] for p in data["panels"]]
    assert marks == [["x"], ["x"]], marks  # error and loss panels of the one column
    assert "x on the top edge: 1 unhealthy test evaluation (test loss not finite" in data["title"]
    data = json.loads(figures.plot_curves([well], tmp_path / "w", "exp")[-1].read_text())
    assert all(not p["annotations"] for p in data["panels"]) and "unhealthy" not in data["title"]
