"""The paper figures drawn from run logs in the papers' layouts (issue 17, item 2), checked on their content:
every panel the layout promises holds the expected lines (or image) with finite values, for one depth and for
several. Run folders are hand-made (config.json, metrics.jsonl, and for Xie Fig. 6 checkpoint.pt) with probe
records shaped as the probes write them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import epoch_records

import normbench.outputs.figures as figures
import normbench.outputs.probe_figures as probe_figures
from normbench.runs.folder import load_runs


def write_run(
    root: Path,
    experiment: str,
    model: str,
    seed: int,
    method: str = "none",
    probes: dict[int, dict] | None = None,
    dataset: str = "digits",
    paper_dataset: str = "cifar10",
    reproduces: tuple[str, ...] = (),
    lrs: list[float] | None = None,
    steps: int = 100,
    test_error: float = 10.0,
    iterations: dict[int, int] | None = None,
) -> Path:
    """A run folder: epoch records (``steps`` per epoch, learning rates ``lrs``), probe records ``probes``
    (epoch -> probes; epoch 0 is the initialisation record), optional record iterations."""
    n = len(lrs) if lrs else max([1, *(probes or {})])
    recs = epoch_records([max(50.0 - i, 0.0) for i in range(n)], [test_error + 0.5 * seed] * n)
    for r, lr in zip(recs, lrs or [0.1] * n):
        r["lr"], r["steps"] = lr, steps
    records = []
    if probes and 0 in probes:
        records.append({"kind": "probe", "epoch": 0, "probes": probes[0]})
    for r in recs:
        records.append(r)
        if probes and r["epoch"] in probes:
            records.append({"kind": "probe", "epoch": r["epoch"], "probes": probes[r["epoch"]]})
    for rec in records:
        if rec["kind"] == "probe" and iterations and rec["epoch"] in iterations:
            rec["iteration"] = iterations[rec["epoch"]]
    cfg = {
        "experiment": experiment,
        "reproduces": list(reproduces),
        "model": model,
        "arch": model,
        "method": method,
        "method_options": {},
        "seed": seed,
        "dataset": dataset,
        "paper_dataset": paper_dataset,
    }
    path = root / experiment / model / method / f"seed{seed}"
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(cfg))
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def saved(paths) -> dict:
    """The figure's JSON; asserts that no label lies outside the figure."""
    assert paths[-1].suffix == ".json" and paths[0].stat().st_size > 0
    data = json.loads(paths[-1].read_text())
    assert data["outside"] == [], data["outside"]
    return data


def finite_lines(panel) -> list[dict]:
    """The panel's lines with at least one finite value (all of their values finite or absent)."""
    return [line for line in panel["lines"] if any(v is not None and math.isfinite(v) for v in line["y"])]


def assert_filled(panel, labels: list[str], log: bool = True) -> None:
    """Every label has a line with finite values in the panel; nothing says "no records"; positive on log."""
    drawn = {line["label"] for line in finite_lines(panel)}
    assert set(labels) <= drawn, (panel["title"], labels, drawn)
    assert not panel["notes"], (panel["title"], panel["notes"])
    if log:
        assert panel["yscale"] == "log"
        assert all(v > 0 for v in figures.panel_values(panel)), panel["title"]


# ----------------------------------------------------------------------- Oyedotun et al., Figs. 11-12

OYEDOTUN = ("convnet164", "resnet164", "preact_resnext164")


def condition_probe(seed: int, layers: int = 6, inf_at: int | None = None) -> dict:
    kappas = [2.0 + layer + seed for layer in range(layers)]
    if inf_at is not None:
        kappas[inf_at] = "inf"
    return {"weight_condition": [{"index": i, "name": f"l{i}", "kappa": k} for i, k in enumerate(kappas)]}


def test_oyedotun_fig11_two_datasets_side_by_side(tmp_path):
    """Fig. 11 (left: MNIST, right: CIFAR-10), drawn from the runs of both experiments: two panels in the
    paper's order, a line per network in each, infinite condition numbers as crosses."""
    for exp, ds in (("oy_cifar10", "cifar10"), ("oy_mnist", "mnist")):  # config order is not panel order
        for model in OYEDOTUN:
            for seed in (0, 1):
                inf = 3 if model == "convnet164" and ds == "cifar10" else None
                write_run(
                    tmp_path,
                    exp,
                    model,
                    seed,
                    probes={50: condition_probe(seed, inf_at=inf)},
                    paper_dataset=ds,
                    reproduces=("oyedotun2020/fig11",),
                )
    runs = load_runs([tmp_path])
    data = saved(
        probe_figures.PROBE_FIGURES["weight_condition"](runs, tmp_path / "fig11", "oyedotun2020/fig11")
    )
    assert data["title"].startswith("Oyedotun et al. 2020, Fig. 11 (proxy: digits)")
    left, right = data["panels"]
    assert left["title"] == "MNIST (proxy: digits)" and right["title"] == "CIFAR-10 (proxy: digits)"
    for panel in (left, right):
        assert_filled(panel, list(OYEDOTUN))
    assert right["points"] and not left["points"]  # the infinite layer of PlainNet on CIFAR-10


def test_oyedotun_fig12_and_single_dataset(tmp_path):
    """Fig. 12 (CIFAR-100 | ImageNet) and one experiment alone (one panel)."""
    for exp, ds in (("oy_imagenet", "imagenet"), ("oy_cifar100", "cifar100")):
        for model in OYEDOTUN:
            write_run(tmp_path, exp, model, 0, probes={50: condition_probe(0)}, paper_dataset=ds)
    runs = load_runs([tmp_path])
    data = saved(
        probe_figures.PROBE_FIGURES["weight_condition"](runs, tmp_path / "fig12", "oyedotun2020/fig12")
    )
    assert [p["title"] for p in data["panels"]] == ["CIFAR-100 (proxy: digits)", "ImageNet (proxy: digits)"]
    for panel in data["panels"]:
        assert_filled(panel, list(OYEDOTUN))
    one = [r for r in runs if r.config["experiment"] == "oy_cifar100"]
    # the paper figure's panels fixed by its layout: ImageNet without runs says so rather than vanishing
    fixed = {"datasets": ["cifar100", "imagenet"]}
    data = saved(
        probe_figures.PROBE_FIGURES["weight_condition"](one, tmp_path / "f", "oyedotun2020/fig12", fixed)
    )
    left, right = data["panels"]
    assert_filled(left, list(OYEDOTUN))
    assert right["title"] == "ImageNet" and right["notes"] == ["no records"] and not right["lines"]
    data = saved(probe_figures.PROBE_FIGURES["weight_condition"](one, tmp_path / "one", "oy_cifar100"))
    assert len(data["panels"]) == 1
    assert_filled(data["panels"][0], list(OYEDOTUN))


# ----------------------------------------------------------------------------- Jia et al., Fig. 1


def sv_probe(spread: float) -> dict:
    layers = []
    for i, name in enumerate(("conv1", "blocks.9.conv", "blocks.18.conv")):
        values = [1.0 + spread * (k - 8) / 8 * (i + 1) for k in range(17)]
        layers.append({"name": name, "singular_values": values})
    return {"sv_histograms": layers}


@pytest.mark.parametrize("models", [("convnet38",), ("convnet20", "convnet38")])
def test_jia_fig1_three_layer_panels(tmp_path, models):
    """Lower, middle and higher layers (one row per depth), a stair line per method in each, SGD red and SVB
    blue as printed."""
    for model in models:
        for method, spread in (("none", 0.9), ("svb", 0.1)):
            for seed in (0, 1):
                write_run(tmp_path, "jia", model, seed, method, probes={160: sv_probe(spread)})
    runs = load_runs([tmp_path])
    data = saved(probe_figures.PROBE_FIGURES["sv_histograms"](runs, tmp_path / "fig1", "jia"))
    panels = data["panels"]
    assert len(panels) == 3 * len(models)
    heads = ["lower layer (conv1)", "middle layer (blocks.9.conv)", "higher layer (blocks.18.conv)"]
    if len(models) == 1:
        assert [p["title"] for p in panels] == heads
    else:
        assert [p["title"] for p in panels] == [f"depth {d}: {h}" for d in (20, 38) for h in heads]
    for panel in panels:
        assert_filled(panel, ["convnet", "convnet+svb"], log=False)
        for line in panel["lines"]:  # a normalized histogram: fractions summing to 1
            assert sum(line["y"][:-1]) == pytest.approx(1.0)


# ----------------------------------------------------------------------- Zaeemzadeh et al., Fig. 5

ZAEEMZADEH_FIG5 = {
    "preact_resnet164": ("none", 5.5),
    "preact_resnet1001": ("none", 4.6),
    "procresnet166": ("procrustes", 4.8),
    "procresnet274": ("procrustes", 4.3),
    "procresnet1003": ("procrustes", 3.7),
}


@pytest.mark.parametrize("models", [("preact_resnet164", "procresnet166"), tuple(ZAEEMZADEH_FIG5)])
def test_zaeemzadeh_fig5_parameter_efficiency(tmp_path, models):
    """Error against parameters, a line per family through its depths (one depth: a point each)."""
    for model in models:
        method, error = ZAEEMZADEH_FIG5[model]
        for seed in (0, 1):
            write_run(
                tmp_path,
                "z5",
                model,
                seed,
                method,
                lrs=[0.1, 0.1],
                dataset="cifar10",
                test_error=error,
                reproduces=("zaeemzadeh2020/fig5",),
            )
    runs = load_runs([tmp_path])
    data = saved(figures.FIGURES["param_efficiency"](runs, tmp_path / "fig5", "z5"))
    assert data["title"].startswith("Zaeemzadeh et al. 2020, Fig. 5")
    (panel,) = data["panels"]
    assert panel["xscale"] == "log" and not panel["notes"]
    lines = {line["label"]: line for line in finite_lines(panel) if not line["label"].startswith("_")}
    assert panel["bands"]  # the error bars over seeds
    assert set(lines) == {"preact_resnet", "procresnet + procrustes"}
    depths = {m: int("".join(c for c in m if c.isdigit())) for m in models}
    for label, line in lines.items():
        mine = [m for m in models if (m.startswith("proc")) == label.startswith("proc")]
        assert all(v is not None and v > 0 for v in line["x"]) and line["x"] == sorted(line["x"])
        # mean of the seeds' errors (error and error + 0.5)
        assert line["y"] == pytest.approx([ZAEEMZADEH_FIG5[m][1] + 0.25 for m in mine])
    assert sorted(map(int, panel["annotations"])) == sorted(depths.values())


# ----------------------------------------------------------------------------- Xie et al., Fig. 6


def test_xie_fig6_first_conv_filters(tmp_path):
    """Left L2 (method none), right orthonormality: the first conv's filters as an RGB mosaic of finite values;
    a run without a checkpoint draws a note."""
    import torch

    from normbench.models import build_model

    for method in ("ortho_init+ortho_reg", "none"):
        path = write_run(tmp_path, "x6", "convnet20", 0, method, lrs=[0.1], dataset="cifar10")
        torch.manual_seed(0)
        net = build_model("convnet20", num_classes=10, in_channels=3)
        torch.save({"model": net.state_dict(), "config": {}}, path / "checkpoint.pt")
    runs = load_runs([tmp_path])
    data = saved(figures.FIGURES["conv1_filters"](runs, tmp_path / "fig6", "x6"))
    left, right = data["panels"]
    conv1 = next(t for k, t in net.state_dict().items() if t.dim() == 4)
    size = f"{conv1.shape[0]} filters, {conv1.shape[2]}x{conv1.shape[3]}"
    assert left["title"] == f"L2 regularization\n{size}" and right["title"] == f"ortho_init+ortho_reg\n{size}"
    for panel in (left, right):
        (image,) = panel["images"]
        assert image["shape"][2] == 3 and all(v is not None and 0.0 <= v <= 1.0 for v in image["values"])
    # the paper draws ResNet-34 alone: layout depth keeps that depth's models
    assert (
        len(saved(figures.FIGURES["conv1_filters"](runs, tmp_path / "d", "x6", {"depth": 20}))["panels"]) == 2
    )
    (tmp_path / "x6" / "convnet20" / "none" / "seed0" / "checkpoint.pt").unlink()
    data = saved(figures.FIGURES["conv1_filters"](load_runs([tmp_path]), tmp_path / "fig6b", "x6"))
    assert data["panels"][0]["notes"] == ["no checkpoint"] and data["panels"][1]["images"]


# ----------------------------------------------------------------------------- Xie et al., Figs. 3-4


def moments_probe(epoch: int, seed: int, layers: int = 8) -> dict:
    q = [(0.5 + 0.1 * seed) ** (layers - i) * (1 + epoch) for i in range(layers)]
    return {"backward_moments": {"layers": [f"c{i}" for i in range(layers)], "q": q}}


XIE_VARIANTS = {"none": "", "ortho_init+ortho_reg": "+ortho_init+ortho_reg"}


def xie_runs(root: Path, models, epochs: int = 12, steps: int = 250, iterations: bool = False) -> list:
    lrs = [0.1] * 8 + [0.01] * (epochs - 8)  # the rate divided after epoch 8: iteration 2000
    for model in models:
        for method in XIE_VARIANTS:
            for seed in (0, 1):
                write_run(
                    root,
                    "xie",
                    model,
                    seed,
                    method,
                    probes={e: moments_probe(e, seed) for e in range(epochs + 1)},
                    lrs=lrs,
                    steps=steps,
                    reproduces=("xie2017/fig3", "xie2017/fig4"),
                    iterations={e: e * steps + 7 for e in range(1, epochs + 1)} if iterations else None,
                )
    return load_runs([root])


@pytest.mark.parametrize("models", [("convnet44",), ("convnet44", "convnet110")])
def test_xie_fig4_profiles_at_named_iterations(tmp_path, models):
    """One panel per named iteration (200, 2000, 20000, 30000; a row per depth), a line per method over the
    layers; with epoch records, the epoch end nearest each iteration, said in the panel and the title."""
    runs = xie_runs(tmp_path, models)
    data = saved(probe_figures.PROBE_FIGURES["backward_profile"](runs, tmp_path / "fig4", "xie"))
    assert data["title"].startswith("Xie et al. 2017, Fig. 4 (proxy: digits)")
    assert "EPOCH RESOLUTION" in data["title"]
    panels = data["panels"]
    assert len(panels) == 4 * len(models)
    # 250 steps per epoch: iteration 200 -> epoch 1 (250), 2000 -> epoch 8, 20000 and 30000 -> the last, 12
    picks = ["it. 250, epoch 1", "it. 2000, epoch 8", "it. 3000, epoch 12", "it. 3000, epoch 12"]
    for k, panel in enumerate(panels):
        target = (200, 2000, 20000, 30000)[k % 4]
        assert f"iteration {target} (record: {picks[k % 4]})" in panel["title"]
        labels = [m.removesuffix("") for m in models]
        model = labels[k // 4]
        assert_filled(panel, [model + v for v in XIE_VARIANTS.values()])
        for line in finite_lines(panel):
            assert len(line["y"]) == 8 and line["y"][-1] == pytest.approx(1.0)  # q^L / q^L


def test_xie_fig4_records_at_iterations(tmp_path):
    """Probe records that carry their iteration (an iteration schedule) are used as they are."""
    runs = xie_runs(tmp_path, ("convnet44",), iterations=True)
    data = saved(
        probe_figures.plot_backward_profile(runs, tmp_path / "fig4", "xie", {"iterations": [200, 2000]})
    )
    assert "EPOCH RESOLUTION" not in data["title"] and "probes recorded every 250 iterations" in data["title"]
    assert [p["title"].split(" (")[1] for p in data["panels"]] == [
        "record: it. 257, epoch 1)",
        "record: it. 2007, epoch 8)",
    ]


@pytest.mark.parametrize("models", [("convnet44",), ("convnet44", "convnet110")])
def test_xie_fig3_two_panels_over_iterations(tmp_path, models):
    """Top: every iteration (the first five omitted, as the paper); bottom: up to the first learning-rate
    drop (iteration 2000 here, 32000 in the paper). A line per variant in both."""
    runs = xie_runs(tmp_path, models)
    data = saved(probe_figures.PROBE_FIGURES["backward_moments"](runs, tmp_path / "fig3", "xie"))
    assert "EPOCH RESOLUTION" in data["title"] and "every 50 iterations" in data["title"]
    top, bottom = data["panels"]
    assert top["title"] == "all iterations"
    assert bottom["title"] == "enlarged: iterations 5-2000 (before the first learning-rate drop)"
    labels = [m + v for m in models for v in XIE_VARIANTS.values()]
    for panel in (top, bottom):
        assert panel["xlabel"] == "iteration"
        assert_filled(panel, labels)
    for line in finite_lines(top):
        assert line["x"] == [
            250.0 * e for e in range(1, 13)
        ]  # the initialisation record (iteration 0) omitted
    for line in finite_lines(bottom):
        assert max(line["x"]) == 2000.0


# ----------------------------------------------------------------------------- the workflow plans them

SUITE_FIGURES = {
    "oyedotun2020/fig11": "--probe weight_condition",
    "oyedotun2020/fig12": "--probe weight_condition",
    "oyedotun2020/fig13": "--probe hidden_condition",
    "jia2017/fig1": "--probe sv_histograms",
    "zaeemzadeh2020/fig5": "--figure param_efficiency",
    "xie2017/fig3": "--probe backward_moments",
    "xie2017/fig4": "--probe backward_profile",
    "xie2017/fig6": "--figure conv1_filters",
}


def test_paper_config_plans_the_paper_figures(repo):
    """config/paper.yaml draws every paper figure above once its runs exist (figures/<paper>/<fig>.png), each
    titled by its key; Xie Fig. 6 reads the runs' checkpoints. A `paper_figures` entry of the config takes the
    place of the suite's."""
    import subprocess

    from normbench.config import load_config

    config = load_config(repo / "config" / "paper.yaml")
    result = subprocess.run(
        [
            "snakemake",
            "-n",
            "-p",
            "--cores",
            "1",
            "--configfile",
            "config/paper.yaml",
            "--until",
            "paper_figure",
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    commands = [line for line in out.splitlines() if "normbench figures" in line]
    for key, draw in SUITE_FIGURES.items():
        assert f"figures/{key}.png" in out, key
        if key not in config["paper_figures"]:
            (cmd,) = [c for c in commands if f"--out-stem results/paper/figures/{key} " in c]
            assert f"{draw} " in cmd and f"--title {key} " in cmd and "checkpoint.pt" not in cmd, cmd
    fig6 = out[: out.index("output: results/paper/figures/xie2017/fig6.png")].rsplit("input:", 1)[1]
    assert "imagenet_resnet34_xie/none/seed0/checkpoint.pt" in fig6
    assert """--layout '{"depth": 34}'""" in next(c for c in commands if "figures/xie2017/fig6 " in c)


# ------------------------------------------------------------------ Oyedotun et al., Figs. 5-10, A1-A6


def unit_probe(seed: int, scale: float) -> dict:
    """activation_dist / weight_dist records as the probes write them: the first and last weight layers."""
    out = {}
    for name in ("activation_dist", "weight_dist"):
        layers = []
        for idx, lname in ((0, "stem"), (163, "fc")):
            width = scale * (1 + seed) * (100.0 if idx == 0 else 1.0)
            edges = [-width + 2 * width * i / 4 for i in range(5)]
            layers.append(
                {
                    "name": lname,
                    "layer_index": idx,
                    "range": 2 * width,
                    "histogram": {"counts": [1, 3, 5, 1], "edges": edges, "normalized": False, "n": 10},
                }
            )
        out[name] = layers
    return out


def test_oyedotun_unit_figures_one_model_a_panel_per_layer(tmp_path):
    """Fig. 5 is PlainNet's activations on MNIST: only that model's runs, a panel per recorded layer (first,
    last), a histogram line per seed whose fractions sum to 1, the layer's range in the panel title; the
    figure title names Fig. 5 alone."""
    for model, scale in (("convnet164", 1e4), ("resnet164", 1.0)):
        for seed in (0, 1):
            write_run(tmp_path, "oy", model, seed, probes={3: unit_probe(seed, scale)}, paper_dataset="mnist")
    runs = load_runs([tmp_path])
    assert probe_figures.OYEDOTUN_UNIT_FIGURES["fig5"] == ("mnist", "convnet164", "activation_dist")
    assert probe_figures.OYEDOTUN_UNIT_FIGURES["figA4"] == ("cifar10", "resnet164", "weight_dist")
    data = saved(
        probe_figures.PROBE_FIGURES["unit_distribution"](
            runs, tmp_path / "fig5", "oyedotun2020/fig5", {"model": "convnet164", "probe": "activation_dist"}
        )
    )
    assert data["title"].startswith("Oyedotun et al. 2020, Fig. 5") and "convnet164" in data["title"]
    first, last = data["panels"]
    assert first["title"] == "layer 1 (stem): range 4e+06" and last["title"] == "layer 164 (fc): range 4e+04"
    for panel in (first, last):
        lines = finite_lines(panel)
        assert [line["label"] for line in lines] == ["seed 0", "seed 1"]
        for line in lines:  # a closed outline: 0, the bins' fractions (summing to 1), 0
            assert line["y"][0] == line["y"][-1] == 0.0 and sum(line["y"][1:-1]) == pytest.approx(1.0)
    # weights of the other model: its own range
    data = saved(
        probe_figures.plot_unit_distribution(
            runs, tmp_path / "fig8", "oyedotun2020/fig8", {"model": "resnet164", "probe": "weight_dist"}
        )
    )
    assert data["panels"][0]["title"] == "layer 1 (stem): range 400"
    # a model without records: one panel saying so, not a blank figure
    data = saved(
        probe_figures.plot_unit_distribution(
            runs, tmp_path / "f9", "oyedotun2020/fig9", {"model": "resnext164"}
        )
    )
    assert [p["notes"] for p in data["panels"]] == [["no records"]]


# ---------------------------------------------------------------- the Procrustes constraint's recorded state


def test_procrustes_state_figure_two_operators_a_line_pair_per_layer(tmp_path):
    """From procrustes_state records: circular and zero-padded panels, max and min per projected layer over the
    epochs, mean over seeds; a run without such records says 'no records'."""
    from normbench.outputs.constraint_figures import plot_procrustes_state

    for seed in (0, 1):
        path = write_run(tmp_path, "z", "procresnet22", seed, method="procrustes", lrs=[0.1, 0.1, 0.1])
        with (path / "metrics.jsonl").open("a") as f:
            for epoch in (1, 2, 3):
                layers = {
                    name: {
                        "circular_min": 1.0 - 0.1 / epoch,
                        "circular_max": 1.0 + 0.1 / epoch,
                        "zero_padded_min": 0.6 + 0.01 * seed,
                        "zero_padded_max": 1.0,
                        "alternate_residual": None,
                        "alternate_passes": None,
                    }
                    for name in ("stem.weight", "stage2.0.shortcut.weight")
                }
                f.write(json.dumps({"kind": "procrustes_state", "epoch": epoch, "layers": layers}) + "\n")
    runs = load_runs([tmp_path])
    data = saved(plot_procrustes_state(runs, tmp_path / "state", "z"))
    circular, padded = data["panels"]
    assert circular["title"].startswith("circular") and padded["title"].startswith("zero-padded")
    labels = {line["label"]: line for line in finite_lines(circular)}
    assert set(labels) == {f"{la} ({s})" for la in ("stem", "stage2.0.shortcut") for s in ("max", "min")}
    assert labels["stem (max)"]["x"] == [1, 2, 3]
    assert labels["stem (min)"]["y"] == pytest.approx([0.9, 0.95, 1.0 - 0.1 / 3])
    zp = {line["label"]: line for line in finite_lines(padded)}
    assert zp["stem (min)"]["y"] == pytest.approx([0.605] * 3)  # mean over the two seeds
    # no records: both panels say so
    other = tmp_path / "other"
    write_run(other, "z", "preact_resnet20", 0, lrs=[0.1])
    data = saved(plot_procrustes_state(load_runs([other]), tmp_path / "none", "z"))
    assert [p["notes"] for p in data["panels"]] == [["no records"], ["no records"]]


def test_jia_fig1_without_runs_says_no_records(tmp_path):
    """No runs (or none with the probe): every panel says so, rather than a KeyError."""
    data = saved(probe_figures.plot_sv_layers([], tmp_path / "fig1", "jia"))
    assert [p["notes"] for p in data["panels"]] == [["no records"]] * 3
