"""The smoke-all pipeline (config/smoke.yaml) regenerates, at tiny scale, every table and figure that
config/paper.yaml plans.

Marked ``smoke_all`` and kept out of the default run; ``.ci/run`` runs it in its own stage
(``python -m pytest -m smoke_all``). To keep CI short (7 min 0 s here on 2 cores, 2026-12-04), it runs one seed per
experiment and one epoch (a second config file, ``proxy: {seeds: 1, epochs: 1}``: 114 training runs instead of 181, each
half as long); the builders are the same,
and the two-seed spread code is covered by the default pipeline's tests. Snakemake is asked for the paper
plan's outputs (``--summary``), and each table, figure, paper-layout table, comparison and report file must
then exist under ``results/smoke-all`` with the same name, non-empty.
"""

import json
import subprocess
from pathlib import Path

import pytest
from conftest import copy_workflow

from normbench.verdicts.metrics import metric_info

ARTEFACTS = ("/tables/", "/figures/", "/paper_tables/", "/comparison.", "/claims.", "/report.html")


def planned_outputs(cwd: Path, configfile: str) -> list[str]:
    """Every output the configuration's DAG plans, from ``snakemake --summary`` (nothing runs)."""
    result = subprocess.run(
        ["snakemake", "--summary", "--cores", "1", "--configfile", configfile],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [line.split("\t")[0] for line in result.stdout.splitlines()[1:] if line.strip()]


@pytest.mark.smoke_all
def test_smoke_all_produces_every_table_and_figure_the_paper_config_plans(tmp_path):
    copy_workflow(tmp_path)
    paper = [f for f in planned_outputs(tmp_path, "config/paper.yaml") if any(a in f for a in ARTEFACTS)]
    assert len(paper) > 200  # tables, figures, paper tables of 40-odd experiments
    (tmp_path / "one-seed.yaml").write_text("proxy: {seeds: 1, epochs: 1}\n")
    result = subprocess.run(
        [
            "snakemake",
            "--cores",
            "2",
            "--configfile",
            "config/smoke.yaml",
            "one-seed.yaml",
            "--quiet",
            "progress",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=2400,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    missing = [
        f
        for f in paper
        if not (tmp_path / f.replace("results/paper/", "results/smoke-all/", 1)).is_file()
        or (tmp_path / f.replace("results/paper/", "results/smoke-all/", 1)).stat().st_size == 0
    ]
    assert not missing, f"{len(missing)} of {len(paper)} planned files missing or empty: {missing[:20]}"
    # Every number that depends on runs is PROXY (or NOT RUN, or NOT EVALUATED where the metric is not
    # computed from the logs): only the architecture's own quantities (parameter counts, depths, block
    # counts: the structure rows) can get a reproduction verdict from a proxy configuration.

    rows = json.loads((tmp_path / "results/smoke-all/comparison.json").read_text())
    rows = rows["rows"] if isinstance(rows, dict) else rows
    undecided = ("PROXY", "NOT RUN", "NOT EVALUATED")
    decided = {r["metric"] for r in rows if r["verdict"] not in undecided}
    assert {"params", "depth"} <= decided and all(metric_info(m).kind == "structure" for m in decided), (
        decided
    )
    assert not [r["id"] for r in rows if r["kind"] == "trained" and r["verdict"] not in undecided]
    assert sum(r["verdict"] == "PROXY" for r in rows) > 50
