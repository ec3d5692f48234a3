"""Content, not existence: every panel a figure's layout promises holds finite data, for experiments of one depth
and of several, from run folders whose logs hold real probe records (the probes run on the registry's models).

Issue 17: with one depth, ``grad_norm_ratio`` grouped its panels by a key pandas turned from None into NaN and
drew every panel as "no records".
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import epoch_records

import normbench.outputs.figures as figures
import normbench.outputs.probe_figures as probe_figures
from normbench.models import build_model
from normbench.outputs.layouts import RECORD_FIGURES
from normbench.probes import PROBES, record_probes
from normbench.runs.folder import load_runs

SINGLE = ("plain20", "preact_resnet20")  # experiment 'gap' of the default pipeline: one depth
MULTI = ("plain20", "plain83", "preact_resnet20", "preact_resnet83")  # two families, depths 20 and 83
EPOCHS = 3


REPRODUCES = {
    "gap": ["zaeemzadeh2020/table1", "zaeemzadeh2020/fig3"],  # as config/config.yaml
    "deep": ["xie2017/fig2", "xie2017/fig3", "jia2017/fig1", "oyedotun2020/fig11", "zaeemzadeh2020/fig4"],
}


def write_run(root: Path, experiment: str, model: str, seed: int, method: str = "none") -> Path:
    """A run folder as the trainer leaves it: config.json and metrics.jsonl with epoch and probe records."""
    torch.manual_seed(seed)
    net = build_model(model, num_classes=10, in_channels=1)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    train = [60.0 - 15 * i + seed for i in range(EPOCHS)]
    test = [0.5 + 4.0 * seed for _ in range(EPOCHS)]  # near 0 %: mean - 1 std < 0 must be clipped to 0
    records = []
    for i, rec in enumerate(epoch_records(train, test)):
        rec["train_loss"], rec["test_loss"] = 2.0 / (i + 1), 0.01 + 0.1 * seed  # mean - std < 0: log axis
        records.append(rec)
        probe = record_probes(net, (x, y), list(PROBES))
        records.append({"kind": "probe", "epoch": rec["epoch"], **probe})
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    cfg = {
        "experiment": experiment,
        "reproduces": REPRODUCES[experiment],
        "model": model,
        "arch": model,
        "method": method,
        "method_options": {},
        "seed": seed,
        "dataset": "digits",
        "paper_dataset": "cifar10",
    }
    path = root / experiment / model / method / f"seed{seed}"
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(cfg))
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: more threads only contend
    for experiment, models in (("gap", SINGLE), ("deep", MULTI)):
        for model in models:
            for seed in (0, 1):
                write_run(root, experiment, model, seed)
    torch.set_num_threads(threads)
    return {"gap": root / "gap", "deep": root / "deep"}


def finite(values) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def panel_values(ax) -> list[float]:
    """The finite data values drawn in one panel: data lines (not reference lines), filled bands, scatter
    points, heat-map cells."""
    values = []
    for line in ax.get_lines():
        if line.get_transform() == ax.transData:
            values += finite(line.get_ydata())
    for coll in ax.collections:
        for path in coll.get_paths():
            values += finite(path.vertices[:, 1])
        values += finite(coll.get_offsets()[:, 1]) if len(coll.get_offsets()) else []
        if coll.get_array() is not None:
            values += finite(coll.get_array().ravel())
    return values


@pytest.fixture
def drawn(monkeypatch) -> list:
    """Every figure the builders save: [(panel title, finite values drawn)] before the figure is closed."""
    seen = []
    save = figures.save_figure

    def spy(fig, out_stem, *args, **kwargs):
        panels = [ax for ax in fig.axes if not hasattr(ax, "_colorbar")]
        seen.append([(ax.get_title(), panel_values(ax)) for ax in panels])
        return save(fig, out_stem, *args, **kwargs)

    monkeypatch.setattr(figures, "save_figure", spy)
    monkeypatch.setattr(probe_figures, "save_figure", spy)
    return seen


# the figures of the probes these runs record (a record figure such as procrustes_state needs a constraint's
# records: tests/test_paper_figures.py builds them)
PROBE_NAMES = [n for n in probe_figures.PROBE_FIGURES if n not in RECORD_FIGURES]


@pytest.mark.parametrize("experiment", ["gap", "deep"])
@pytest.mark.parametrize("name", ["curves", *PROBE_NAMES])
def test_every_panel_has_finite_data(run_dirs, drawn, tmp_path, experiment, name):
    runs = load_runs([run_dirs[experiment]])
    builder = figures.FIGURES.get(name) or probe_figures.PROBE_FIGURES[name]
    paths = builder(runs, tmp_path / name, experiment, None)
    panels = drawn[-1]
    assert panels, name
    blank = [title for title, values in panels if not values]
    assert not blank, f"{name} ({experiment}): panels without data: {blank}"
    # the figure's data file says the same: every panel drew finite values, no panel says "no records"
    assert paths[-1] == tmp_path / f"{name}.json"
    saved = json.loads(paths[-1].read_text())
    assert len(saved["panels"]) == len(panels)
    for panel in saved["panels"]:
        assert figures.panel_values(panel) and not panel["notes"], (name, panel["title"])
        if panel["yscale"] == "log":  # nothing at or below 0 on a log axis, bands included
            assert all(v > 0 for v in figures.panel_values(panel)), (name, panel["title"])
    assert saved["outside"] == [], f"labels outside the figure: {saved['outside']}"
    assert not any("$" in p["ylabel"] and p["ylabel"].count("$") % 2 for p in saved["panels"])


def test_curves_bands_within_the_metric_range(run_dirs, tmp_path):
    """The ± 1 std band of a test error near 0 % stops at 0; that of a loss near 0 stays positive (log axis)."""
    runs = load_runs([run_dirs["gap"]])
    paths = figures.plot_curves(runs, tmp_path / "curves", "gap")
    panels = json.loads(paths[-1].read_text())["panels"]
    error, loss = panels
    bands = [v for b in error["bands"] for v in b["y"] if v is not None]
    assert bands and min(bands) == 0.0 and max(bands) <= 100.0  # clipped, not below 0
    assert loss["yscale"] == "log" and all(v > 0 for b in loss["bands"] for v in b["y"] if v is not None)
    # test error: mean 2.5 over the seeds 0.5 and 4.5, std 2.83: the band would reach -0.33
    test_line = next(line for line in error["lines"] if "(test)" in line["label"])
    assert test_line["y"] == [pytest.approx(2.5)] * EPOCHS


@pytest.mark.parametrize(
    ("experiment", "name", "title"),
    [
        ("gap", "grad_norm_ratio", "Zaeemzadeh et al. 2020, Fig. 3 (proxy: digits); experiment gap"),
        ("gap", "curves", "gap"),  # Table 1 is no figure and Fig. 3 is not the curves
        ("deep", "curves", "Zaeemzadeh et al. 2020, Fig. 4 (proxy: digits); experiment deep"),
        ("deep", "weight_correlation", "Xie et al. 2017, Fig. 2 (proxy: digits); experiment deep"),
        ("deep", "backward_moments", "Xie et al. 2017, Fig. 3 (proxy: digits); experiment deep"),
        ("deep", "singular_values", "Jia et al. 2017, Fig. 1 (proxy: digits); experiment deep"),
        ("deep", "weight_condition", "Oyedotun et al. 2020, Fig. 11-12 (proxy: digits); experiment deep"),
        ("deep", "activation_dist", "deep"),
    ],
)
def test_titles_name_the_paper_figure(run_dirs, tmp_path, experiment, name, title):
    runs = load_runs([run_dirs[experiment]])
    builder = figures.FIGURES.get(name) or probe_figures.PROBE_FIGURES[name]
    paths = builder(runs, tmp_path / name, experiment, None)
    assert json.loads(paths[-1].read_text())["title"].split("\n")[0] == title


def test_grad_norm_ratio_single_depth_panels(run_dirs, drawn, tmp_path):
    """The default pipeline's Zaeemzadeh Fig. 3 (experiment 'gap'): one panel per variant, each with a line per
    block over the epochs."""
    runs = load_runs([run_dirs["gap"]])
    probe_figures.plot_grad_norm_ratio(runs, tmp_path / "grad_norm_ratio", "gap")
    panels = drawn[-1]
    assert [t for t, _ in panels] == list(SINGLE)
    assert all(len(values) >= EPOCHS for _, values in panels)
