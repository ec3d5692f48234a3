"""The trainer: determinism, divergence as a result, checkpoint contents, learning-rate schedules."""

import json

import pytest
import torch

from normbench.config import run_config, run_specs, validate_config
from normbench.runs.folder import read_records, without_timing
from normbench.training.trainer import lr_at, train_run


@pytest.fixture
def one_run(tiny_config):
    tiny_config["experiments"]["gap"]["models"] = ["preact_resnet20"]
    tiny_config["experiments"]["gap"]["seeds"] = [3]
    config = validate_config(tiny_config)
    return run_config(config, run_specs(config)[0])


def test_same_seed_same_metrics(one_run, tmp_path):
    train_run(one_run, tmp_path / "a", log=lambda m: None)
    train_run(one_run, tmp_path / "b", log=lambda m: None)
    a = read_records(tmp_path / "a" / "metrics.jsonl")
    b = read_records(tmp_path / "b" / "metrics.jsonl")
    assert len([r for r in a if r["kind"] == "epoch"]) == 2 and without_timing(a) == without_timing(b)


def test_run_folder_contents(one_run, tmp_path):
    out = tmp_path / "run"
    train_run(one_run, out, log=lambda m: None)
    assert json.loads((out / "config.json").read_text()) == one_run
    prov = json.loads((out / "provenance.json").read_text())
    assert {"git", "versions", "device", "seed", "wall_seconds"} <= set(prov) and prov["seed"] == 3
    assert "sha" in prov["git"] and "dirty" in prov["git"] and "torch" in prov["versions"]
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    assert "model" in ckpt and ckpt["constraints"] == [] and ckpt["status"] == "completed"
    assert not (out / "resume.pt").exists()
    rec = next(r for r in read_records(out / "metrics.jsonl") if r["kind"] == "epoch")
    assert {"epoch", "train_loss", "train_error", "test_loss", "test_error", "seconds", "lr"} <= set(rec)


def test_divergence_is_recorded_not_raised(one_run, tmp_path, capsys):
    one_run["optimizer"]["lr"] = 1e6
    one_run["model"] = "plain20"
    result = train_run(one_run, tmp_path / "div")
    assert result["status"] == "diverged"
    records = read_records(tmp_path / "div" / "metrics.jsonl")
    assert records[-1]["kind"] == "diverged" and "non-finite" in records[-1]["reason"]
    assert "DIVERGED" in capsys.readouterr().out


def test_progress_line_per_epoch(one_run, tmp_path):
    lines = []
    train_run(one_run, tmp_path / "p", log=lines.append)
    assert len(lines) == 2 and all("test_err" in line and line.endswith(")") for line in lines)


def test_lr_schedules():
    opt = {"lr": 0.1}
    assert lr_at(5, opt, {"name": "constant"}, 10) == 0.1
    step = {"name": "step", "milestones": [150, 225], "gamma": 0.1}
    assert lr_at(150, opt, step, 300) == pytest.approx(0.1)
    assert lr_at(151, opt, step, 300) == pytest.approx(0.01)
    assert lr_at(226, opt, step, 300) == pytest.approx(0.001)
    log = {"name": "log", "final_lr": 0.001, "every": 2}
    opt = {"lr": 0.5}
    assert lr_at(1, opt, log, 160) == pytest.approx(0.5) and lr_at(2, opt, log, 160) == pytest.approx(0.5)
    assert lr_at(160, opt, log, 160) == pytest.approx(0.001)
    mid = lr_at(81, opt, log, 160)  # level 40 of 80: geometric mean-ish
    assert 0.001 < mid < 0.5


def test_probes_are_recorded_at_init_and_every_k_epochs(one_run, tmp_path):
    one_run["probes"] = {
        "names": ["grad_norm_ratio", "weight_correlation"],
        "every": 2,
        "batch": 16,
        "options": {},
    }
    one_run["epochs"] = 2
    train_run(one_run, tmp_path / "pr", log=lambda m: None)
    records = read_records(tmp_path / "pr" / "metrics.jsonl")
    probes = [r for r in records if r["kind"] == "probe"]
    assert [r["epoch"] for r in probes] == [0, 2]
    ratios = probes[0]["probes"]["grad_norm_ratio"]
    assert len(ratios) == 6 and all(r["ratio"] > 0 for r in ratios)  # 3 stages x 2 blocks of ResNet-20
    assert [r["kind"] for r in records] == ["probe", "epoch", "epoch", "probe"]


def test_checkpoint_is_the_evaluated_model(one_run, tmp_path):
    """``finalize`` runs before the last evaluation: the saved weights give the last logged test numbers."""
    from normbench.training.trainer import _build, evaluate, open_data

    one_run["method"] = "svb"
    one_run["method_options"] = {"svb": {"eps": 0.05, "every_epochs": 3}}  # never in 2 epochs: finalize only
    out = tmp_path / "run"
    train_run(one_run, out, log=lambda m: None)
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    assert ckpt["constraints"] and all(c["max_sv"] <= 1.05 + 1e-4 for c in ckpt["constraints"])
    _, data, batches = open_data(one_run)
    model, *_ = _build(one_run, data, torch.device("cpu"))
    model.load_state_dict(ckpt["model"])
    again = evaluate(model, batches.test_batches())
    last = [r for r in read_records(out / "metrics.jsonl") if r["kind"] == "epoch"][-1]
    assert again["test_error"] == last["test_error"]
    assert again["test_loss"] == pytest.approx(last["test_loss"], abs=1e-6)


@pytest.mark.parametrize("engine", ["eager", "fast"])
def test_probes_on_an_iteration_schedule(one_run, tmp_path, engine):
    """``iterations`` and ``every_iterations`` add probe records right after those steps, inside their epoch,
    each with its iteration; the epoch-schedule readers (claims, epoch curves) do not see them, the iteration
    readers (Xie Figs. 3-4) see both, in iteration order, once per iteration."""
    from normbench.outputs.probe_figures import _resolution_note, probe_iterations
    from normbench.runs.folder import load_run

    one_run["engine"] = {"name": engine}
    one_run["probes"] = {
        "names": ["backward_moments"],
        "every": 2,
        "iterations": [3],
        "every_iterations": 5,
        "batch": 16,
        "options": {},
    }
    train_run(one_run, tmp_path / "it", log=lambda m: None)
    run = load_run(tmp_path / "it" / "metrics.jsonl")
    steps = [r["steps"] for r in run.records if r["kind"] == "epoch"]
    total = sum(steps)
    assert total > 10, steps
    want = sorted({3, *range(5, total + 1, 5)})
    at_it = [r for r in run.probes("backward_moments", iterations=True) if "iteration" in r]
    assert [r["iteration"] for r in at_it] == want
    # each record sits inside the epoch that was running: epoch e covers steps (sum of earlier, sum up to e]
    ends = [sum(steps[:e]) for e in range(1, len(steps) + 1)]
    assert all(r["epoch"] == next(e for e, end in enumerate(ends, 1) if r["iteration"] <= end) for r in at_it)
    assert [r["epoch"] for r in run.probes("backward_moments")] == [0, 2]
    its = [it for _, it, _ in probe_iterations(run, "backward_moments")]
    assert its == sorted(set(its)) and set(want) | {0} <= set(its), its
    assert _resolution_note([run], "backward_moments") == "probes recorded at named iterations"


def test_progress_within_an_epoch_shows_steps_rate_and_eta(one_run, tmp_path, monkeypatch):
    """With NORMBENCH_PROGRESS_SECONDS=0.000001 every step but the last of an epoch logs a progress line (steps
    done of the epoch's, percentage, img/s, epoch and run ETA as h:mm:ss); the epoch line gives the run ETA
    until the last epoch. 0 turns them off; a non-number is an error naming the variable."""
    import re

    from normbench.training.trainer import clock, progress_line, progress_seconds

    assert clock(3725.4) == "1:02:05" and clock(-3) == "0:00:00"
    line = progress_line("[t]", 2, 10, 50, 200, 128, 25.0)
    # 0.5 s a step: 150 steps left in this epoch, 8 epochs of 200 after it
    assert line == "[t] epoch 2/10 step 50/200 (25%) 256 img/s; epoch ETA 0:01:15, run ETA 0:14:35"
    monkeypatch.setenv("NORMBENCH_PROGRESS_SECONDS", "1e-6")
    lines: list[str] = []
    train_run(one_run, tmp_path / "p", log=lines.append)
    steps = [r["steps"] for r in read_records(tmp_path / "p" / "metrics.jsonl") if r["kind"] == "epoch"]
    within = [x for x in lines if " step " in x]
    assert len(within) == sum(s - 1 for s in steps), lines
    pattern = r"\[gap/preact_resnet20/none/seed3\] epoch (\d)/2 step (\d+)/(\d+) \(\d+%\) \d+ img/s; "
    pattern += r"epoch ETA \d+:\d\d:\d\d, run ETA \d+:\d\d:\d\d"
    assert all(re.fullmatch(pattern, x) for x in within), within[:3]
    ends = [x for x in lines if " step " not in x and "test_err" in x]
    assert "run ETA" in ends[0] and "run ETA" not in ends[-1], ends
    monkeypatch.setenv("NORMBENCH_PROGRESS_SECONDS", "0")
    lines.clear()
    train_run(one_run, tmp_path / "q", log=lines.append)
    assert not [x for x in lines if " step " in x]
    monkeypatch.setenv("NORMBENCH_PROGRESS_SECONDS", "soon")
    with pytest.raises(ValueError, match="NORMBENCH_PROGRESS_SECONDS must be a number"):
        progress_seconds()
