"""The SLURM and workstation profiles.

Unmarked tests read the profiles, dry-run every configuration through the SLURM profile (resources per job
scaled to the experiment, GPUs only where the config asks for them) and check the GPU slot wrapper of the
workstation profile. Tests marked `slurm` submit real jobs to the one-node cluster of scripts/slurm-local.sh
(`scripts/slurm-local.sh up`, as root) and skip when it is not running.
"""

from __future__ import annotations

import csv
import math
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import copy_workflow

from normbench.config import load_config
from normbench.runs.folder import read_records, without_timing

REPO = Path(__file__).resolve().parents[1]
SLURM_PROFILE = REPO / "workflow" / "profiles" / "slurm" / "config.yaml"
LOCAL_PROFILE = REPO / "workflow" / "profiles" / "local" / "config.yaml"
GPU_SLOT = REPO / "workflow" / "scripts" / "gpu-slot.sh"
# On a cluster without an accounting database, job states come from squeue (sacct would wait forever).
NO_ACCOUNTING = [
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "5",
    "--slurm-no-account",
]


def _jobs(text: str) -> list[dict]:
    """The jobs a Snakemake run or dry run prints: rule, wildcards and resources of each."""
    jobs, job = [], None
    for line in text.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):$", line.strip())
        if m:
            job = {"rule": m.group(1), "wildcards": {}, "resources": {}}
            jobs.append(job)
        elif job is not None and line.strip().startswith(("wildcards:", "resources:")):
            key, _, values = line.strip().partition(": ")
            for item in values.split(", "):
                name, _, value = item.partition("=")
                job[key.rstrip(":")][name] = value
    return jobs


# --- the profiles ------------------------------------------------------------------------------------------


def test_slurm_profile_settings():
    profile = yaml.safe_load(SLURM_PROFILE.read_text())
    assert profile["executor"] == "slurm"
    assert profile["retries"] >= 1 and profile["latency-wait"] >= 30 and profile["jobs"] >= 8
    assert profile["rerun-incomplete"] is True and profile["keep-going"] is True
    assert profile["slurm-status-command"] == "sacct"  # a real cluster keeps its accounting database
    assert "--nv" in profile["apptainer-args"].split()
    assert {"mem_mb", "runtime"} <= set(profile["default-resources"])
    assert "gpu" not in profile.get("default-resources", {}) and "set-resources" not in profile


def test_local_profile_runs_one_job_per_gpu():
    profile = yaml.safe_load(LOCAL_PROFILE.read_text())
    assert profile["cores"] == "all" and profile["resources"]["gpu"] >= 1
    assert "--nv" in profile["apptainer-args"].split()
    train = (REPO / "workflow" / "rules" / "train.smk").read_text()
    assert "workflow/scripts/gpu-slot.sh {resources.gpu} " in train and "gpu=train_gpus" in train


CONFIGS = sorted({p.name for p in (REPO / "config").glob("*.yaml")} | {"paper.yaml"})


@pytest.mark.parametrize("name", CONFIGS)
def test_slurm_profile_dry_run_plans_the_config(tmp_path, name):
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="pip install -e '.[slurm]'")
    if not (REPO / "config" / name).exists():
        pytest.skip(f"config/{name} does not exist yet (another session writes the paper configuration)")
    copy_workflow(tmp_path)
    config = load_config(tmp_path / "config" / name)
    result = subprocess.run(
        ["snakemake", "-n", "--profile", "workflow/profiles/slurm", "--configfile", f"config/{name}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    jobs = _jobs(out)
    trains = [j for j in jobs if j["rule"] in ("train", "fig2_run")]  # fig2_run: Fig. 2 study runs
    expected_runs = sum(
        len(e["models"]) * len(e["methods"]) * len(e["seeds"]) for e in config["experiments"].values()
    )
    assert len(trains) == expected_runs
    for job in trains:
        exp_name = job["wildcards"]["experiment"]
        exp = config["experiments"][exp_name]
        res = {**config["resources"], **exp["resources"]}
        runtime = math.ceil(res["setup_minutes"] + exp["epochs"] * res["minutes_per_epoch"])
        assert job["resources"]["gpu"] == str(res["gpus"]), job
        assert job["resources"]["runtime"] == str(runtime), job
        assert job["resources"]["mem_mb"] == str(res["mem_mb"]), job
    for job in jobs:
        if job["rule"] in (
            "tables",
            "figures",
            "probe_figure",
            "fig2_figure",
            "compare",
            "paper_tables",
            "report",
            "data",
        ):
            assert job["resources"].get("gpu", "0") == "0", job  # CPU jobs
            assert job["resources"]["runtime"] == "30", job


def test_gpus_and_runtime_come_from_the_config(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="pip install -e '.[slurm]'")
    copy_workflow(tmp_path)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["resources"] = {"gpus": 1, "minutes_per_epoch": 2.5, "mem_mb": 16000}
    exp = next(iter(config["experiments"].values()))
    exp["resources"] = {"setup_minutes": 3}
    (tmp_path / "gpu.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        ["snakemake", "-n", "--profile", "workflow/profiles/slurm", "--configfile", "gpu.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = _jobs(result.stdout + result.stderr)
    trains = [j for j in jobs if j["rule"] == "train"]
    assert trains and all(j["resources"]["gpu"] == "1" for j in trains)
    assert all(j["resources"]["runtime"] == str(math.ceil(3 + exp["epochs"] * 2.5)) for j in trains)
    assert all(j["resources"]["mem_mb"] == "16000" for j in trains)
    assert all(j["resources"].get("gpu", "0") == "0" for j in jobs if j["rule"] != "train")


def _slot_env(tmp_path: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("SLURM_JOB_ID", "CUDA_VISIBLE_DEVICES")}
    env["NORMBENCH_GPU_LOCKS"] = str(tmp_path / "locks")
    env.update(extra)
    return env


def test_gpu_slot_gives_each_job_its_own_gpu(tmp_path):
    env = _slot_env(tmp_path, CUDA_VISIBLE_DEVICES="3,5")
    job = (
        'echo "$CUDA_VISIBLE_DEVICES $(date +%s.%N)" >> {log}; sleep 1.5; echo "end $(date +%s.%N)" >> {log}'
    )
    procs = [
        subprocess.Popen(
            [str(GPU_SLOT), "1", "bash", "-c", job.format(log=tmp_path / f"job{i}.log")],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    errs = [p.communicate(timeout=60)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errs
    spans = []
    for i in range(3):
        (gpu, start), (_, end) = (
            line.split() for line in (tmp_path / f"job{i}.log").read_text().splitlines()
        )
        spans.append((gpu, float(start), float(end)))
    assert {gpu for gpu, _, _ in spans} == {"3", "5"}
    for a in spans:
        for b in spans:
            if a is not b and a[0] == b[0]:
                assert a[2] <= b[1] or b[2] <= a[1], f"two jobs shared GPU {a[0]} at the same time: {spans}"
    assert any("waiting for 1 free GPU" in e for e in errs)


def test_gpu_slot_leaves_cpu_and_slurm_jobs_alone(tmp_path):
    show = ["bash", "-c", 'echo "[${CUDA_VISIBLE_DEVICES-unset}]"']
    out = subprocess.run([str(GPU_SLOT), "0", *show], env=_slot_env(tmp_path), capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "[unset]"
    slurm = _slot_env(tmp_path, SLURM_JOB_ID="42", CUDA_VISIBLE_DEVICES="7")
    out = subprocess.run([str(GPU_SLOT), "1", *show], env=slurm, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "[7]"
    few = _slot_env(tmp_path, CUDA_VISIBLE_DEVICES="0")
    out = subprocess.run([str(GPU_SLOT), "2", *show], env=few, capture_output=True, text=True)
    assert out.returncode == 1 and "2 GPUs asked for, 1 visible" in out.stderr


# --- real submissions to the local one-node cluster ------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="pip install -e '.[slurm]'")
    if not shutil.which("sbatch"):
        pytest.skip("sbatch not found: install slurm-wlm (scripts/slurm-local.sh install)")
    status = subprocess.run(
        [str(REPO / "scripts" / "slurm-local.sh"), "status"], capture_output=True, text=True, timeout=60
    )
    if status.returncode != 0:
        pytest.skip(f"no SLURM cluster answers (scripts/slurm-local.sh up): {status.stderr.strip()}")
    return status.stdout.strip()


def _cancel_jobs_under(folder: Path) -> None:
    """scancel the jobs whose working directory is ``folder`` (left over by a timed-out run)."""
    listing = subprocess.run(["squeue", "--noheader", "--format=%i %Z"], capture_output=True, text=True)
    ids = [line.split()[0] for line in listing.stdout.splitlines() if str(folder) in line]
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True)


def _run_bounded(cmd: list[str], cwd: Path, timeout: float) -> subprocess.Popen:
    """Start ``cmd`` in its own process group (Snakemake ignores SIGTERM while it waits for SLURM)."""
    log = open(cwd / "snakemake.out", "w")  # noqa: SIM115  closed by _finish
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc.deadline = time.time() + timeout
    proc.log = log
    return proc


def _finish(proc: subprocess.Popen, cwd: Path) -> tuple[int | None, str]:
    try:
        proc.wait(timeout=max(1.0, proc.deadline - time.time()))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        _cancel_jobs_under(cwd)
        proc.returncode = None
    proc.log.close()
    return proc.returncode, (cwd / "snakemake.out").read_text()


def _csv_without_timings(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return [{k: v for k, v in row.items() if "seconds" not in k} for row in csv.DictReader(fh)]


@pytest.mark.slurm
def test_smoke_pipeline_on_slurm_matches_the_local_run(cluster, tmp_path):
    local, slurm = tmp_path / "local", tmp_path / "slurm"
    for folder in (local, slurm):
        folder.mkdir()
        copy_workflow(folder)
    reference = _run_bounded(["snakemake", "--cores", "2"], local, timeout=600)
    submitted = _run_bounded(
        ["snakemake", "--profile", "workflow/profiles/slurm", *NO_ACCOUNTING], slurm, timeout=900
    )
    rc_local, out_local = _finish(reference, local)
    rc_slurm, out_slurm = _finish(submitted, slurm)
    assert rc_local == 0, out_local[-3000:]
    assert rc_slurm == 0, f"SLURM run {'timed out' if rc_slurm is None else 'failed'}:\n{out_slurm[-5000:]}"
    jobs = [j for j in _jobs(out_slurm) if j["rule"] != "all"]
    slurm_ids = re.findall(r"has been submitted with SLURM jobid (\d+)", out_slurm)
    assert len(slurm_ids) == len(jobs) > 0, "every job must be an sbatch submission"
    config = load_config(REPO / "config" / "config.yaml")
    res_local = local / "results" / config["name"]
    res_slurm = slurm / "results" / config["name"]
    runs = sorted(p.relative_to(res_local) for p in res_local.glob("runs/*/*/*/seed*"))
    assert len(runs) == sum(len(e["models"]) * len(e["seeds"]) for e in config["experiments"].values())
    for run in runs:
        a, b = res_local / run, res_slurm / run
        assert without_timing(read_records(a / "metrics.jsonl")) == without_timing(
            read_records(b / "metrics.jsonl")
        ), run
        assert (a / "config.json").read_text() == (b / "config.json").read_text()
    for name in ["comparison.csv", *(f"tables/{e}.csv" for e in config["experiments"])]:
        a, b = _csv_without_timings(res_local / name), _csv_without_timings(res_slurm / name)
        diff = [(i, k, x.get(k), y.get(k)) for i, (x, y) in enumerate(zip(a, b)) for k in x.keys() | y.keys()]
        assert len(a) == len(b) and not [d for d in diff if d[2] != d[3]], (
            name,
            [d for d in diff if d[2] != d[3]],
        )
    assert (res_slurm / "report.html").exists()


@pytest.mark.slurm
def test_gpu_request_reaches_sbatch(cluster, tmp_path):
    """The node has no GPU: a config asking for one is refused by sbatch at once, which proves the request
    is passed on (the smoke config asks for none and runs)."""
    copy_workflow(tmp_path)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config.update(name="gpu", resources={"gpus": 1})
    (tmp_path / "gpu.yaml").write_text(yaml.safe_dump(config))
    cfg = load_config(tmp_path / "gpu.yaml")
    exp_name, exp = next(iter(cfg["experiments"].items()))
    data = tmp_path / "results" / "gpu" / "data" / f"{exp['dataset']}.pt"
    made = subprocess.run(
        ["normbench", "data", "--dataset", exp["dataset"], "--out", str(data)], capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    target = f"results/gpu/runs/{exp_name}/{exp['models'][0]}/{exp['methods'][0]}/seed{exp['seeds'][0]}/metrics.jsonl"
    cmd = ["snakemake", "--profile", "workflow/profiles/slurm", *NO_ACCOUNTING, "--configfile", "gpu.yaml"]
    proc = _run_bounded([*cmd, "--retries", "0", target], tmp_path, timeout=240)
    rc, out = _finish(proc, tmp_path)
    assert rc not in (0, None), out[-3000:]
    assert "Invalid generic resource" in out, out[-3000:]
