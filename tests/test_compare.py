"""Aggregation, tolerance rule and verdicts on hand-made runs, and the --strict exit code."""

import json
import math

import pytest
import yaml
from conftest import epoch_records

from normbench.cli import main
from normbench.compare import compare, compare_one
from normbench.references import Reference, load_references, parse_reference_file
from normbench.runs import Run, append_record, load_runs, summarize
from normbench.tables import aggregate, write_tables


def _run(tmp_path, seed, gaps, dataset="cifar10", epochs=None, model="plain20", diverged=False):
    records = epoch_records([10.0] * len(gaps), [10.0 + g for g in gaps])
    if diverged:
        records = [{"kind": "diverged", "epoch": 1, "iteration": 3, "reason": "nan"}]
    config = {
        "experiment": "gap",
        "model": model,
        "method": "none",
        "seed": seed,
        "dataset": dataset,
        "epochs": epochs or len(gaps),
        "reproduces": ["zaeemzadeh2020/table1"],
    }
    folder = tmp_path / f"runs/gap/{model}/none/seed{seed}"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    for r in records:
        append_record(folder / "metrics.jsonl", r)
    return folder / "metrics.jsonl"


def test_summary_gap_mean_and_max():
    s = summarize(epoch_records([10, 5, 2], [20, 9, 8]))
    assert s["gap_mean"] == pytest.approx((10 + 4 + 6) / 3) and s["gap_max"] == 10
    assert s["final_test_error"] == 8 and s["best_test_error"] == 8 and not s["diverged"]


def test_aggregate_mean_std_n(tmp_path):
    paths = [_run(tmp_path, s, [g]) for s, g in enumerate([1.0, 2.0, 3.0])]
    df = aggregate(load_runs(paths))
    row = df.iloc[0]
    assert row["runs"] == 3 and row["gap_mean_mean"] == pytest.approx(2.0)
    assert row["gap_mean_std"] == pytest.approx(1.0) and row["gap_mean_n"] == 3
    written = write_tables(load_runs(paths), tmp_path / "tables")
    assert {p.suffix for p in written} == {".md", ".csv", ".tex"}
    assert "2.00 ± 1.00" in (tmp_path / "tables" / "gap.md").read_text()


def _ref(value=6.7, runs=3, epochs=1, metric="gap_mean", statistic="mean", model="plain20", **kw):
    return Reference(
        paper="zaeemzadeh2020",
        table="table1",
        label="Table 1",
        row="depth 20",
        column=f"{model} {metric}",
        metric=metric,
        units="%",
        statistic=statistic,
        value=value,
        dataset="cifar10",
        runs=runs,
        epochs=epochs,
        protocol="test protocol",
        model=model,
        missing="diverged" if value is None else None,
        **kw,
    )


def _runs(tmp_path, gaps, **kw):
    return load_runs([_run(tmp_path, s, [g], **kw) for s, g in enumerate(gaps)])


def test_verdict_inside_tolerance(tmp_path):
    row = compare_one(_ref(6.7), _runs(tmp_path, [6.0, 7.0, 7.5]))
    assert row["verdict"] == "REPRODUCED" and row["n"] == 3
    assert row["tolerance"] == pytest.approx(max(1.0, 2 * 0.7637626 / math.sqrt(3)), rel=1e-5)


def test_verdict_outside_tolerance(tmp_path):
    row = compare_one(_ref(6.7), _runs(tmp_path, [9.0, 9.1, 9.2]))
    assert row["verdict"] == "DEVIATES" and row["delta"] == pytest.approx(2.4)


def test_verdict_too_few_runs(tmp_path):
    row = compare_one(_ref(6.7, runs=1), _runs(tmp_path, [6.7]))
    assert row["verdict"] == "INCONCLUSIVE"


@pytest.mark.parametrize("kw", [{"dataset": "digits"}, {"epochs": 8}])
def test_verdict_proxy_when_protocol_differs(tmp_path, kw):
    row = compare_one(_ref(6.7), _runs(tmp_path, [6.6, 6.7, 6.8], **kw))
    assert row["verdict"] == "PROXY" and row["protocol_differences"]


def test_verdict_proxy_when_fewer_runs_than_paper(tmp_path):
    row = compare_one(_ref(6.7, runs=10), _runs(tmp_path, [6.6, 6.7, 6.8]))
    assert row["verdict"] == "PROXY" and "3 runs (paper: 10)" in row["protocol_differences"]


def test_verdict_best_of_n_compares_our_best(tmp_path):
    row = compare_one(_ref(2.0, metric="gap_mean", statistic="best"), _runs(tmp_path, [2.0, 5.0, 9.0]))
    assert row["ours"] == 2.0 and row["delta"] == 0.0


def test_not_run_and_diverged_reference(tmp_path):
    refs = [
        _ref(6.7, model="plain20"),
        _ref(None, model="plain164", runs=2),
        _ref(None, model="plain164", runs=10, metric="gap_max"),
    ]
    runs = _runs(tmp_path, [1.0, 1.0], model="plain164", diverged=True)
    df = compare(refs, runs)
    assert list(df["verdict"]) == ["NOT RUN", "REPRODUCED", "PROXY"]  # '-' = all diverge; 2 runs of 10: proxy
    assert list(df["diverged"]) == [0, 2, 2]
    converged = compare([_ref(None, model="plain20", runs=2)], _runs(tmp_path / "c", [1.0, 1.0]))
    assert converged["verdict"].item() == "DEVIATES"


def test_shipped_references_load():
    refs = load_references()
    assert any(r.id == "zaeemzadeh2020/table1/depth 20/Plain mean" and r.value == 6.7 for r in refs)


def test_strict_exit_codes(tmp_path):
    ref_file = tmp_path / "zaeemzadeh2020.yaml"
    doc = {
        "paper": "zaeemzadeh2020",
        "title": "t",
        "source": "s",
        "protocols": {
            "table1": {"label": "Table 1", "dataset": "cifar10", "epochs": 1, "runs": 3, "description": "d"}
        },
        "entries": [
            {
                "table": "table1",
                "row": "r",
                "column": "c",
                "model": "plain20",
                "metric": "gap_mean",
                "units": "%",
                "statistic": "mean",
                "value": 6.7,
            }
        ],
    }
    ref_file.write_text(yaml.safe_dump(doc))
    assert len(parse_reference_file(ref_file)) == 1
    good = [str(_run(tmp_path / "good", s, [g])) for s, g in enumerate([6.5, 6.7, 6.9])]
    bad = [str(_run(tmp_path / "bad", s, [g])) for s, g in enumerate([20.0, 20.1, 20.2])]
    args = ["compare", "--references", str(ref_file), "--strict", "--out-dir"]
    assert main([*args, str(tmp_path / "o1"), *good]) == 0
    assert main([*args, str(tmp_path / "o2"), *bad]) == 1
    proxy = [
        str(_run(tmp_path / "proxy", s, [g], dataset="digits")) for s, g in enumerate([20.0, 20.1, 20.2])
    ]
    assert main([*args, str(tmp_path / "o3"), *proxy]) == 0  # PROXY never fails --strict
    for ext in ("csv", "md", "json"):
        assert (tmp_path / "o2" / f"comparison.{ext}").exists()


def test_run_equality_key(tmp_path):
    run = _runs(tmp_path, [1.0])[0]
    assert isinstance(run, Run) and run.key == ("gap", "plain20", "none")


def test_not_reported_value_is_not_compared(tmp_path):
    from dataclasses import replace

    ref = replace(_ref(None), missing="illegible", note="garbled")
    row = compare_one(ref, _runs(tmp_path, [1.0, 1.0]))
    assert row["verdict"] == "NOT RUN" and "illegible" in row["rule"]


@pytest.mark.parametrize(
    "qualifier,ours,verdict",
    [
        ("upper_bound", [5.0, 5.1, 5.2], "REPRODUCED"),
        ("upper_bound", [9.0, 9.1, 9.2], "DEVIATES"),
        ("lower_bound", [9.0, 9.1, 9.2], "REPRODUCED"),
        ("about", [7.2, 7.25, 7.3], "REPRODUCED"),
    ],
)
def test_qualifiers(tmp_path, qualifier, ours, verdict):
    row = compare_one(_ref(6.7, qualifier=qualifier), _runs(tmp_path, ours))
    assert row["verdict"] == verdict


def test_std_statistic_and_accuracy_metric(tmp_path):
    runs = _runs(tmp_path, [1.0, 2.0, 3.0])
    assert compare_one(_ref(1.0, statistic="std"), runs)["ours"] == pytest.approx(1.0)
    acc = compare_one(_ref(90.0, metric="test_accuracy", statistic="best"), runs)
    assert acc["ours"] == pytest.approx(89.0)  # best of n = highest accuracy (test error 10 + gap 1)


def test_model_metrics_need_no_runs():
    ok = compare_one(_ref(1.71, metric="params", statistic="none", model="preact_resnet164"), [])
    assert ok["verdict"] == "REPRODUCED" and abs(ok["ours"] - 1.703) < 0.001
    bad = compare_one(_ref(2.6, metric="params", statistic="none", model="preact_resnet164"), [])
    assert bad["verdict"] == "DEVIATES"
    assert compare_one(_ref(164, metric="depth", statistic="none", model="preact_resnet164"), [])[
        "verdict"
    ] == ("REPRODUCED")


def test_matching_uses_options_optimizer_and_paper_dataset(tmp_path):
    from normbench.compare import run_matches

    run = _runs(tmp_path, [1.0])[0]
    run.config.update(
        method="svb",
        method_options={"svb": {"eps": 0.05}},
        optimizer={"name": "adam"},
        paper_dataset="cifar10",
    )
    key = "zaeemzadeh2020/table1"
    svb = {"method": "svb"}
    assert run_matches(
        run, key, "plain20", options={"svb": {"eps": 0.05}}, optimizer="adam", dataset="cifar10", **svb
    )
    assert not run_matches(run, key, "plain20", options={"svb": {"eps": 0.5}}, **svb)
    assert not run_matches(run, key, "plain20", options={}, **svb)  # default eps 0.5 is another configuration
    assert not run_matches(run, key, "plain20", options={"svb": {"eps": 0.05}})  # method none
    assert not run_matches(run, key, "plain20", optimizer="sgd", options={"svb": {"eps": 0.05}}, **svb)
    assert not run_matches(run, key, "plain20", dataset="cifar100", options={"svb": {"eps": 0.05}}, **svb)
    assert not run_matches(run, "jia2017/table1", "plain20", options={"svb": {"eps": 0.05}}, **svb)
    run.config["method_options"] = {"svb": {"eps": 0.5}}  # the default, set explicitly: same configuration
    assert run_matches(run, key, "plain20", options={}, **svb)


def test_relative_metrics_against_their_baseline(tmp_path):
    from dataclasses import replace

    from normbench.compare import compare

    def timed(folder, model, method, seconds):
        path = _run(folder, 0, [1.0], model=model)
        cfg = json.loads((path.parent / "config.json").read_text())
        cfg.update(method=method, optimizer={"name": "sgd"})
        (path.parent / "config.json").write_text(json.dumps(cfg))
        rec = epoch_records([10.0], [11.0], step_seconds=seconds / 10)[0]
        path.write_text(json.dumps(rec) + "\n")
        return path

    paths = [
        timed(tmp_path / "a", "plain20", "none", 100.0),
        timed(tmp_path / "b", "plain20", "procrustes", 107.6),
    ]
    ref = replace(
        _ref(7.6, metric="train_time_overhead", statistic="unstated", runs=None),
        method="procrustes",
        baseline={"model": "plain20", "method": "none"},
    )
    row = compare([ref], load_runs(paths)).iloc[0]
    assert row["ours"] == pytest.approx(7.6) and row["verdict"] == "REPRODUCED"
    far = compare([replace(ref, value=53.0)], load_runs(paths)).iloc[0]
    assert far["verdict"] == "DEVIATES"
    alone = compare([ref], load_runs(paths[1:])).iloc[0]
    assert alone["verdict"] == "NOT RUN" and "no baseline runs" in alone["rule"]
