"""End to end: the Snakemake DAG on a tiny configuration in a temporary copy of the workflow."""

import csv
import json
import subprocess

import pytest
import yaml
from conftest import copy_workflow, job_stats


def _snakemake(cwd, *args, timeout=600):
    return subprocess.run(
        ["snakemake", "--cores", "2", *args, "--configfile", "tiny.yaml"],  # targets in args: before it
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, repo):
    """Run the whole DAG once on a tiny config (2 models x 2 seeds x 2 epochs of 8x8 digits)."""
    from conftest import TINY_EXPERIMENT

    work = tmp_path_factory.mktemp("wf")
    copy_workflow(work)
    experiment = {**TINY_EXPERIMENT, "probes": {"names": ["grad_norm_ratio"], "batch": 16}}
    config = {"name": "tiny", "threads": 1, "experiments": {"gap": experiment}}
    (work / "tiny.yaml").write_text(yaml.safe_dump(config))
    result = _snakemake(work)
    assert result.returncode == 0, result.stderr[-3000:]
    return work, work / "results" / "tiny", result


def test_every_stage_writes_its_outputs(pipeline):
    _, res, _ = pipeline
    for run in ("plain20/none/seed0", "plain20/none/seed1", "preact_resnet20/none/seed0"):
        folder = res / "runs" / "gap" / run
        lines = (folder / "metrics.jsonl").read_text().splitlines()
        records = [json.loads(x) for x in lines]
        assert [r["epoch"] for r in records if r["kind"] == "epoch"] == [1, 2]
        assert [r["epoch"] for r in records if r["kind"] == "probe"] == [0, 1, 2]
        assert json.loads((folder / "provenance.json").read_text())["git"].keys() == {"sha", "dirty"}
        assert (folder / "checkpoint.pt").stat().st_size > 0
    rows = list(csv.DictReader((res / "tables" / "gap.csv").read_text().splitlines()))
    assert {r["model"] for r in rows} == {"plain20", "preact_resnet20"} and all(
        r["runs"] == "2" for r in rows
    )
    assert (res / "tables" / "gap.md").read_text().startswith("## gap")
    assert (res / "figures" / "gap" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert (res / "figures" / "gap" / "grad_norm_ratio.png").read_bytes()[:4] == b"\x89PNG"
    comparison = list(csv.DictReader((res / "comparison.csv").read_text().splitlines()))
    proxy = [r for r in comparison if r["verdict"] == "PROXY"]
    assert len(proxy) == 4 and {r["table"] for r in proxy} == {"Table 1"}  # plain20, resnet20: gap mean, max
    assert all("data set digits (paper: cifar10)" in r["protocol_differences"] for r in proxy)
    assert not [r for r in comparison if r["verdict"] == "REPRODUCED" and r["kind"] != "structure"]
    html = (res / "report.html").read_text()
    assert "PROXY" in html and "data:image/png;base64" in html and "zaeemzadeh2020" in html
    # every reference table in the paper's layout, run or not, and the baselines across papers
    from normbench.outputs.paper_tables import planned_tables

    for paper, table in planned_tables():
        for ext in ("md", "csv", "tex"):
            assert (res / "paper_tables" / paper / f"{table}.{ext}").stat().st_size > 0, (paper, table, ext)
    cells = list(csv.DictReader((res / "paper_tables" / "zaeemzadeh2020" / "table1.csv").open()))
    assert sum(c["verdict"] == "PROXY" for c in cells) == 4
    assert {f"baselines.{e}" for e in ("md", "csv", "tex")} <= {
        p.name for p in (res / "paper_tables").iterdir()
    }
    assert "Same baseline across papers" in html and "Tables in the paper's layout" in html


def test_progress_is_printed_per_epoch(pipeline):
    _, res, result = pipeline
    log = (res / "logs" / "train" / "gap" / "plain20" / "none" / "seed0.log").read_text()
    assert "epoch 1/2" in log and "epoch 2/2" in log


def test_second_run_does_nothing(pipeline):
    work, _, _ = pipeline
    result = _snakemake(work, "-n")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_deleting_one_log_reruns_that_run_and_downstream_only(pipeline):
    work, res, _ = pipeline
    (res / "runs" / "gap" / "plain20" / "none" / "seed1" / "metrics.jsonl").unlink()
    dry = _snakemake(work, "-n")
    planned = job_stats(dry.stdout + dry.stderr)
    assert planned == {
        "train": 1,
        "tables": 1,
        "figures": 1,
        "probe_figure": 1,
        "compare": 1,
        "paper_tables": 1,
        "report": 1,
        "all": 1,
    }
    result = _snakemake(work)
    assert result.returncode == 0, result.stderr[-2000:]
    again = _snakemake(work, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_bad_config_fails_before_any_job(tmp_path, repo):
    copy_workflow(tmp_path)
    (tmp_path / "tiny.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "bad",
                "experiments": {
                    "gap": {
                        "dataset": "digits",
                        "models": ["plain20"],
                        "seeds": [0],
                        "epochs": 1,
                        "learning_rate": 0.1,
                    }
                },
            }
        )
    )
    result = _snakemake(tmp_path, timeout=120)
    assert result.returncode != 0 and "learning_rate" in result.stderr
    assert not (tmp_path / "results").exists()


def test_unknown_model_fails_listing_valid_ones(tmp_path, repo):
    copy_workflow(tmp_path)
    (tmp_path / "tiny.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "bad",
                "experiments": {
                    "gap": {"dataset": "digits", "models": ["resnet9000"], "seeds": [0], "epochs": 1}
                },
            }
        )
    )
    result = _snakemake(tmp_path, timeout=120)
    assert result.returncode != 0 and "resnet9000" in result.stderr and "preact_resnet20" in result.stderr
    assert not (tmp_path / "results").exists()


def test_snakemake_lint_is_clean(repo):
    result = subprocess.run(
        ["snakemake", "--lint", "--cores", "1"], cwd=repo, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_packed_seeds_share_a_training_job(tmp_path, repo):
    """engine.pack: 2 cuts seeds [0, 1, 2] into jobs (0, 1) and (2); each job writes its runs' folders."""
    from conftest import TINY_EXPERIMENT

    copy_workflow(tmp_path)
    experiment = {**TINY_EXPERIMENT, "models": ["plain20"], "seeds": [0, 1, 2], "epochs": 1}
    config = {"name": "tiny", "threads": 1, "engine": {"pack": 2}, "experiments": {"gap": experiment}}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    targets = [f"results/tiny/runs/gap/plain20/none/seed{s}/metrics.jsonl" for s in (0, 1, 2)]
    runs = tmp_path / "results" / "tiny" / "runs" / "gap" / "plain20" / "none"
    dry = _snakemake(tmp_path, "-n", *targets)
    assert job_stats(dry.stdout + dry.stderr) == {"data": 1, "train_seeds0_1": 1, "train_seeds2": 1}
    result = _snakemake(tmp_path, *targets)
    assert result.returncode == 0, result.stderr[-3000:]
    packs = [json.loads((runs / f"seed{s}" / "provenance.json").read_text())["pack"] for s in (0, 1, 2)]
    assert packs == [[0, 1], [0, 1], None]
    log = tmp_path / "results" / "tiny" / "logs" / "train" / "gap" / "plain20" / "none" / "seeds0_1.log"
    assert "seed0] epoch 1/1" in log.read_text() and "seed1] epoch 1/1" in log.read_text()
    config_json = json.loads((runs / "seed0" / "config.json").read_text())
    assert "pack" not in config_json["engine"]  # a run's config does not depend on how it was packed
