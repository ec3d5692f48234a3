"""Aggregation, tolerance rule and verdicts on hand-made runs, and the --strict exit code."""

import json
import math

import pytest
import yaml
from conftest import epoch_records

from normbench.cli.main import main
from normbench.outputs.tables import aggregate, write_tables
from normbench.references import Reference, load_references, parse_reference_file
from normbench.runs.folder import Run, append_record, load_runs, summarize
from normbench.verdicts.numbers import compare, compare_one


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
    row = compare_one(_ref(6.7), _runs(tmp_path, [6.5, 6.7, 6.9]))
    assert row["verdict"] == "REPRODUCED" and row["n"] == 3
    assert row["tolerance"] == 1.0  # gap_mean's floor
    # Student t at 2 degrees of freedom (4.303), not the normal 2: u = 4.303 * 0.2 / sqrt(3) = 0.50 <= 1.0
    assert row["t"] == pytest.approx(4.302653, rel=1e-6)
    assert row["half_width"] == pytest.approx(4.302653 * 0.2 / math.sqrt(3), rel=1e-5)
    # the same spread the normal rule accepted (2 SE = 0.88 <= 1) is now too wide: t SE = 1.90
    assert compare_one(_ref(6.7), _runs(tmp_path / "b", [6.0, 7.0, 7.5]))["verdict"] == "INCONCLUSIVE"


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
    from normbench.verdicts.numbers import run_matches

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

    from normbench.verdicts.numbers import compare

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


# The three-way rule (normbench.verdicts.numbers.decide): d = ours - paper, u = 2 SE, floor f.
@pytest.mark.parametrize(
    "d,u,floor,n,qualifier,verdict",
    [
        (0.2, 0.1, 0.5, 5, "exact", "REPRODUCED"),  # inside, precise
        (-0.4, 0.3, 0.5, 5, "exact", "REPRODUCED"),  # inside; the interval pokes out, but is narrower than f
        (0.5, 0.5, 0.5, 5, "exact", "REPRODUCED"),  # both on the edge
        (2.4, 0.1, 0.5, 3, "exact", "DEVIATES"),  # far outside
        (-1.2, 0.6, 0.5, 3, "exact", "DEVIATES"),  # wide, but even the nearest end is beyond the floor
        (0.7, 0.3, 0.5, 5, "exact", "INCONCLUSIVE"),  # just outside, interval reaches into the band
        (0.0, 0.8, 0.5, 2, "exact", "INCONCLUSIVE"),  # spot on, but the spread is wider than the band
        (0.9, 1.5, 0.5, 2, "exact", "INCONCLUSIVE"),  # straddles the edge with a wide spread
        (0.0, 0.0, 0.5, 1, "exact", "INCONCLUSIVE"),  # too few runs
        (float("nan"), 0.1, 0.5, 3, "exact", "INCONCLUSIVE"),
        (-3.0, 2.0, 0.5, 3, "upper_bound", "REPRODUCED"),  # whole interval below the bound
        (1.0, 0.2, 0.5, 3, "upper_bound", "DEVIATES"),
        (-1.0, 0.2, 0.5, 3, "upper_bound", "REPRODUCED"),
        (-1.0, 0.2, 0.5, 3, "lower_bound", "DEVIATES"),  # ours must be >= paper: 1.0 below it
    ],
)
def test_decide(d, u, floor, n, qualifier, verdict):
    from normbench.verdicts.numbers import decide

    assert decide(d, u, floor, n, qualifier) == verdict


def test_runs_to_decide():
    from normbench.verdicts.numbers import runs_to_decide

    assert runs_to_decide(0.0, 1.0, 0.5, 2) == 8  # u falls to f at n = 2 * (1.0 / 0.5)^2
    assert runs_to_decide(0.7, 0.3, 0.5, 5) == 12  # u falls below 0.7 - 0.5 at n = 5 * (0.3 / 0.2)^2
    assert runs_to_decide(0.0, 1.0, 0.5, 1) is None


def test_noisy_runs_are_inconclusive_not_reproduced(tmp_path):
    # mean 6.7 = paper, but s = 2.0 over 3 runs: t SE = 4.97 > floor 1.0 (the old rule called this REPRODUCED)
    row = compare_one(_ref(6.7), _runs(tmp_path, [4.7, 6.7, 8.7]))
    assert row["verdict"] == "INCONCLUSIVE" and row["tolerance"] == 1.0
    assert row["half_width"] == pytest.approx(4.302653 * 2.0 / math.sqrt(3), rel=1e-5)
    assert row["delta_low"] == pytest.approx(-row["half_width"])
    assert row["runs_to_decide"] == math.ceil(3 * (row["half_width"] / 1.0) ** 2)


def test_noisy_runs_far_away_deviate(tmp_path):
    row = compare_one(_ref(6.7), _runs(tmp_path, [14.0, 16.0, 18.0]))  # d = 9.3, 2 SE = 2.31
    assert row["verdict"] == "DEVIATES" and row["runs_to_decide"] is None


def test_just_outside_with_narrow_spread_is_inconclusive(tmp_path):
    row = compare_one(_ref(6.7), _runs(tmp_path, [7.6, 7.8, 8.0]))  # d = 1.1 > 1.0, 2 SE = 0.23
    assert row["verdict"] == "INCONCLUSIVE" and row["delta"] == pytest.approx(1.1)


def test_proxy_keeps_the_interval_but_not_the_verdict(tmp_path):
    row = compare_one(_ref(6.7), _runs(tmp_path, [4.7, 6.7, 8.7], dataset="digits"))
    assert row["verdict"] == "PROXY" and row["half_width"] > 0 and row["runs_to_decide"] is None


def test_best_of_n_matches_a_brute_force_bootstrap():
    import numpy as np

    from normbench.verdicts.numbers import best_of_n

    values = [5.3, 5.5, 5.6, 5.8, 6.0, 5.45, 5.7, 5.9]
    rng = np.random.default_rng(1)
    draws = np.asarray(values)[rng.integers(0, len(values), size=(200_000, 5))]
    boo, spread = best_of_n(values, 5)
    assert boo == pytest.approx(draws.min(axis=1).mean(), abs=2e-3)
    assert spread == pytest.approx(draws.min(axis=1).std(), abs=2e-3)
    hi, _ = best_of_n(values, 5, higher_is_better=True)
    assert hi == pytest.approx(draws.max(axis=1).mean(), abs=2e-3)
    assert best_of_n([1.0, 2.0, 3.0], 3)[0] == pytest.approx(
        1 * (1 - (2 / 3) ** 3) + 2 * ((2 / 3) ** 3 - (1 / 3) ** 3) + 3 * (1 / 3) ** 3
    )
    assert best_of_n(values, 1)[0] == pytest.approx(np.mean(values))  # best of 1 = a random run


def test_best_of_n_with_other_number_of_runs_uses_boo_n(tmp_path):
    from normbench.verdicts.numbers import best_of_n

    gaps = [2.0, 2.2, 2.4, 2.6, 2.8, 3.0]
    row = compare_one(_ref(2.1, statistic="best", runs=3), _runs(tmp_path, gaps))
    assert row["ours"] == pytest.approx(best_of_n(gaps, 3)[0]) and 2.0 < row["ours"] < 2.5
    assert row["estimator"].startswith("Boo_3") and row["best_of_n_std"] > 0
    again = compare_one(_ref(2.1, statistic="best", runs=3), _runs(tmp_path / "again", gaps))
    assert again["ours_se"] == row["ours_se"] > 0  # fixed bootstrap seed: deterministic
    assert row["verdict"] == "REPRODUCED"


def test_best_of_n_with_as_many_runs_is_our_best(tmp_path):
    row = compare_one(_ref(2.0, statistic="best", runs=3), _runs(tmp_path, [2.0, 2.2, 2.4]))
    assert row["ours"] == 2.0 and row["estimator"] == "best of 3"
    assert row["ours_se"] == pytest.approx(row["best_of_n_std"])


def test_display_of_model_metrics_and_intervals(tmp_path):
    from normbench.verdicts.numbers import display_rows

    refs = [
        _ref(164, metric="depth", statistic="none", model="preact_resnet164"),
        _ref(1.71, metric="params", statistic="none", model="preact_resnet164"),
        _ref(6.7),
        _ref(2.0, statistic="best"),
    ]
    df = compare(refs, _runs(tmp_path, [4.7, 6.7, 8.7]))
    headers, rows = display_rows(df)
    ours, delta, verdict = headers.index("ours (mean ± std)"), 8, headers.index("verdict")
    assert headers[delta] == "Δ (± t·SE, 95 %)"
    assert rows[0][5] == "164" and rows[0][ours] == "164" and rows[0][delta] == "0"  # a count: no ± -
    assert rows[1][ours] == "1.70" and "±" not in rows[1][ours]
    assert rows[2][ours] == "6.70 ± 2.00" and rows[2][delta] == "+0.00 ± 4.97"
    assert rows[2][verdict].startswith("INCONCLUSIVE (about ") and verdict == 10
    assert rows[3][ours].startswith("4.70 (best of 3); mean 6.70 ± 2.00")
    assert rows[2][9] == (  # gap_mean's floor
        "REPRODUCED: |Δ| ≤ 1 and t·SE ≤ 1; DEVIATES: |Δ| − t·SE > 1 (t: Student, n − 1 df)"
    )


def test_inconclusive_does_not_fail_strict(tmp_path):
    from normbench.verdicts.numbers import strict_failures

    df = compare([_ref(6.7)], _runs(tmp_path, [4.7, 6.7, 8.7]))
    assert df["verdict"].item() == "INCONCLUSIVE" and strict_failures(df).empty


def test_accuracy_gain_uses_the_interval_of_a_difference(tmp_path):
    from dataclasses import replace

    def runs(folder, method, gaps):
        paths = []
        for seed, g in enumerate(gaps):
            path = _run(folder, seed, [g])
            cfg = json.loads((path.parent / "config.json").read_text())
            cfg.update(method=method, optimizer={"name": "sgd"})
            (path.parent / "config.json").write_text(json.dumps(cfg))
            paths.append(path)
        return paths

    ref = replace(
        _ref(4.0, metric="test_accuracy_gain", statistic="unstated", runs=None),
        method="procrustes",
        baseline={"model": "plain20", "method": "none"},
    )
    subject = runs(tmp_path / "a", "procrustes", [1.0, 1.2, 1.4])  # test accuracy 89.0, 88.8, 88.6
    row = compare([ref], load_runs([*subject, *runs(tmp_path / "b", "none", [5.0, 5.2, 5.4])])).iloc[0]
    assert row["ours"] == pytest.approx(4.0) and row["verdict"] == "REPRODUCED"
    # Welch degrees of freedom: equal spreads and n give 2 (n - 1) = 4, t = 2.776
    assert row["t"] == pytest.approx(2.776445, rel=1e-6)
    assert row["half_width"] == pytest.approx(2.776445 * math.sqrt(2 * 0.04 / 3), rel=1e-5)
    noisy = compare([ref], load_runs([*subject, *runs(tmp_path / "c", "none", [3.0, 5.2, 7.4])])).iloc[0]
    assert noisy["verdict"] == "INCONCLUSIVE"  # 2 SE = 2.5 > floor 1
