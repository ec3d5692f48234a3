"""The papers' theorems checked numerically (normbench.studies.theory, verdicts.theory, outputs.theory): every
check gives its verdict on a tiny range, a deliberately violating case fails, the figure's JSON holds finite
values, and the default DAG schedules the stage."""

import json
import math
import subprocess

import pytest
from conftest import copy_workflow, job_stats

from normbench.cli.main import main
from normbench.studies.theory import CHECKS, default_scale, run_check
from normbench.verdicts.claims import FAIL, PASS
from normbench.verdicts.theory import combine, judge, judge_comparison

TINY = {
    "depths": [4, 8, 16],
    "linear_depths": [4, 16, 64],
    "width": 6,
    "draws": 3,
    "deltas": [1e-2, 0.3],
    "grids": [4],
    "batch_sizes": [4, 16],
    "samples": 48,
}

EXPECTED = {key: "REPRODUCED" for key in CHECKS}
EXPECTED["oyedotun2020/theorem2"] = "INCONCLUSIVE"  # 64 layers of width 6 do not collapse below 1e-6 yet

VIOLATING = {
    "zaeemzadeh2020/theorem1": {"premise": "plain"},
    "zaeemzadeh2020/theorem2": {"premise": "plain"},
    "zaeemzadeh2020/corollary1": {"premise": "steep"},
    "zaeemzadeh2020/theorem3": {"premise": "zero_padded"},
    "zaeemzadeh2020/procrustes": {"gain_scale": 0.5},
    "jia2017/lemma1": {"premise": "not unit"},
    "jia2017/svb_backward": {"premise": "unbounded"},
    "xie2017/bn_jacobian": {"premise": "eval"},
    "oyedotun2020/theorem2": {"premise": "orthogonal"},
    "oyedotun2020/theorem3": {"premise": "singular"},
}


@pytest.mark.parametrize("key", list(CHECKS))
def test_each_check_gives_its_verdict_on_a_tiny_range(key):
    result = run_check(key, TINY)
    row = judge(result)
    assert row["verdict"] == EXPECTED[key], row["summary"]
    assert row["statement"] and row["where"] and result["paper"] == key.split("/")[0]
    for s in result["series"].values():
        assert len(s["x"]) == len(s["y"]) > 0


@pytest.mark.parametrize("key", list(CHECKS))
def test_a_violating_case_fails(key):
    """Each check breaks: the premise removed (or the bound or gain scaled) gives FAIL, never a reproduction."""
    row = judge(run_check(key, TINY, **VIOLATING[key]))
    assert row["outcome"] == FAIL, row["summary"]
    assert row["verdict"] == "NOT EVALUATED"  # a broken premise is not the paper's statement


@pytest.mark.parametrize(
    ("key", "options"),
    [
        ("zaeemzadeh2020/theorem2", {"bound_scale": 0.05}),
        ("zaeemzadeh2020/corollary1", {"bound_scale": 0.2}),
    ],
)
def test_a_scaled_bound_fails(key, options):
    assert judge(run_check(key, TINY, **options))["outcome"] == FAIL


def test_theorem3_of_oyedotun_fails_as_stated_at_depth():
    """The ResNet batch of Remark 2 becomes singular in float64 beyond a few dozen Gaussian blocks: DEVIATES."""
    row = judge(run_check("oyedotun2020/theorem3", {**TINY, "depths": [4, 64]}))
    assert row["verdict"] == "DEVIATES" and "m=64" in row["summary"]


def test_theorem2_bound_and_rate_of_zaeemzadeh():
    """The proof's optimum is a global optimum (product = R) and its deviation shrinks like 1/L."""
    res = run_check("zaeemzadeh2020/theorem2", TINY)
    sig = res["series"]["max_l sigma_max(W_l) (measured)"]
    slope = math.log(sig["y"][-1] / sig["y"][0]) / math.log(sig["x"][-1] / sig["x"][0])
    assert -1.1 < slope < -0.9
    assert all(c["measured"] < 1e-9 for c in res["comparisons"] if "global optimum" in c["label"])


def test_judging_rules():
    assert judge_comparison({"label": "", "measured": 1.0, "upper": 1.0, "tolerance": 0.0})[0] == PASS
    assert judge_comparison({"label": "", "measured": 1.1, "upper": 1.0, "tolerance": 0.01})[0] == FAIL
    assert judge_comparison({"label": "", "measured": 0.5, "lower": 1.0})[0] == FAIL
    assert judge_comparison({"label": "", "measured": math.nan, "upper": 1.0})[0] == "INCONCLUSIVE"
    inside = {"label": "", "samples": [0.99, 1.0, 1.01, 1.0], "lower": 0.9, "upper": 1.1}
    outside = {**inside, "samples": [1.5, 1.51, 1.49]}
    wide = {**inside, "samples": [0.5, 1.5, 1.0]}
    assert [judge_comparison(c)[0] for c in (inside, outside, wide)] == [PASS, FAIL, "INCONCLUSIVE"]
    assert judge_comparison({**inside, "samples": [1.0]})[0] == "INCONCLUSIVE"
    limit = {"label": "", "kind": "limit", "threshold": 1e-6, "rise": 10.0}
    assert judge_comparison({**limit, "series": [0.5, 1e-3, 1e-8]})[0] == PASS
    assert judge_comparison({**limit, "series": [0.5, 0.4, 0.6]})[0] == FAIL
    assert judge_comparison({**limit, "series": [0.5, 1e-2]})[0] == "INCONCLUSIVE"
    assert combine([PASS, PASS]) == PASS and combine([PASS, FAIL, "INCONCLUSIVE"]) == FAIL
    assert combine([PASS, "INCONCLUSIVE"]) == "INCONCLUSIVE" and combine([]) == "INCONCLUSIVE"


def test_default_scale_follows_the_config_name():
    assert default_scale("paper") == "paper" and default_scale("smoke") == "small"


def test_cli_writes_figures_with_finite_sidecars_and_verdicts(tmp_path):
    keys = ["zaeemzadeh2020/theorem2", "jia2017/lemma1", "oyedotun2020/theorem3"]
    args = ["theory", "--out-dir", str(tmp_path), "--scale", "small"]
    assert main([*args, *[a for k in keys for a in ("--only", k)]]) == 0
    rows = json.loads((tmp_path / "verdicts.json").read_text())["checks"]
    assert [r["key"] for r in rows] == keys
    for key in keys:
        assert (tmp_path / f"{key}.png").stat().st_size > 0
        side = json.loads((tmp_path / f"{key}.json").read_text())
        (panel,) = side["panels"]
        assert panel["lines"] and all(line["y"] for line in panel["lines"])
        values = [v for line in panel["lines"] for v in line["y"] if v is not None]
        assert values and all(math.isfinite(v) for v in values)
        assert side["verdict"]["key"] == key and side["check"]["comparisons"]
        measured = [c["measured"] for c in side["check"]["comparisons"] if "measured" in c]
        assert all(v is not None and math.isfinite(v) for v in measured)
    assert {r["key"]: r["verdict"] for r in rows}["zaeemzadeh2020/theorem2"] == "REPRODUCED"


def test_report_shows_theory_under_each_paper(tmp_path):
    from normbench.outputs.report import build_report
    from normbench.references import load_references
    from normbench.verdicts.numbers import compare, write_comparison

    write_comparison(compare(load_references(None), []), tmp_path)
    assert main(["theory", "--out-dir", str(tmp_path / "theory"), "--only", "jia2017/lemma1"]) == 0
    html = build_report(tmp_path, tmp_path / "report.html", title="t").read_text()
    jia = html.split("<h2>jia2017</h2>")[1].split("<h2>")[0]
    assert "Theory, checked numerically (1 statements" in jia and "Lemma 1. For a matrix W" in jia
    assert "data:image/png;base64" in jia and '<tr class="REPRODUCED"><td>lemma1</td>' in jia


def test_default_dag_schedules_the_theory_stage(tmp_path):
    """A fresh clone's default pipeline (config/config.yaml) plans one theory job, which the report waits for."""
    copy_workflow(tmp_path)
    result = subprocess.run(
        ["snakemake", "-n", "--cores", "1", "-p"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout + result.stderr
    assert job_stats(out)["theory"] == 1
    assert "normbench theory --out-dir results/smoke/theory --name smoke" in out
    report_job = out.split("rule report:")[1].split("rule ")[0]
    assert "results/smoke/theory/verdicts.json" in report_job
