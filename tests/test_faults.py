"""Faults and bad input: a training job killed at any moment resumes and ends with the metrics of an
uninterrupted run; corrupt checkpoints are detected and the previous one is used; Snakemake's own restart
(--rerun-incomplete, --retries) loses no finished run; bad input stops early with a message that names the
file or key; a diverging run is a recorded result and its siblings still run.

The kills are real SIGKILLs of a `normbench train` process. Most land at exact points of the trainer (the
harness below registers a hook in the trainer's explicit fault registry, ``trainer.FAULTS``, which kills its
own process there); two land at random times.
"""

from __future__ import annotations

import copy
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import TINY_EXPERIMENT, copy_workflow

from normbench.cli import main as cli
from normbench.config import ConfigError, load_config, run_config, run_specs, validate_config
from normbench.runs.folder import read_records, without_timing
from normbench.training.data import load_dataset, save_prepared

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 4
BATCH = 256  # 1437 digits: 6 mini-batches per epoch

# Runs `normbench train` in-process with a hook in the trainer's fault registry (trainer.FAULTS, called at
# the named points of trainer.FAULT_POINTS) that SIGKILLs the process at an exact moment:
# argv = [moment, epoch, normbench arguments...]. No trainer name is patched: a hook that never fires leaves
# the process alive, which the tests report ("the process was not killed").
HARNESS = r"""
import os, pathlib, signal, sys

import normbench.training.trainer as train
from normbench.cli.main import main

moment, at, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
half = int(os.environ["BATCHES"]) // 2


def die():
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def resume_pt(info):
    return pathlib.Path(info["path"]).name == "resume.pt" and info["epoch"] == at


def hook(point, run, **info):
    if moment == "mid_epoch" and point == "step":  # half-way through epoch `at`
        hit = info["epoch"] == at and info["step"] == half
    elif moment == "after_record" and point == "record":  # epoch `at` logged, its checkpoint not written
        hit = info["record"].get("kind") == "epoch" and info["record"].get("epoch") == at
    elif moment == "half_written" and point == "checkpoint_tmp":  # resume.pt's temporary half written
        hit = resume_pt(info)
        if hit:
            os.truncate(info["tmp"], os.path.getsize(info["tmp"]) // 2)
    elif moment == "between_renames" and point == "checkpoint_rotated":  # resume.pt is now resume.pt.prev
        hit = resume_pt(info)
    elif moment == "after_checkpoint" and point == "checkpoint_saved":  # epoch `at` fully checkpointed
        hit = resume_pt(info)
    elif moment == "before_provenance" and point == "provenance":  # checkpoint.pt written, not provenance
        hit = True
    else:
        hit = False
    if hit:
        die()


if moment not in ("mid_epoch", "after_record", "half_written", "between_renames", "after_checkpoint",
                  "before_provenance"):
    raise SystemExit(f"unknown moment {moment}")
train.FAULTS.append(hook)
sys.exit(main(argv))
"""

# (moment, epoch, the epoch the rerun resumes after; 0 = it starts afresh)
KILLS = [
    ("mid_epoch", 1, 0),
    ("mid_epoch", 3, 2),
    ("after_record", 3, 2),
    ("half_written", 3, 2),
    ("between_renames", 3, 2),
    ("after_checkpoint", 3, 3),
    ("before_provenance", EPOCHS, EPOCHS),
    ("random", 1, None),
    ("random", 2, None),
]


def _final_weights(run: Path) -> dict:
    return torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)["model"]


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny CPU run spec, its prepared data and an uninterrupted reference run."""
    root = tmp_path_factory.mktemp("faults")
    raw = {
        "name": "faults",
        "results": str(root / "results"),
        "threads": 1,
        "device": "cpu",
        "experiments": {
            "gap": {
                **copy.deepcopy(TINY_EXPERIMENT),
                "models": ["plain20"],
                "seeds": [5],
                "epochs": EPOCHS,
                "batch_size": BATCH,
            }
        },
    }
    config = validate_config(raw)
    spec = run_config(config, run_specs(config)[0])
    data = root / "digits_8.pt"
    save_prepared(load_dataset("digits", image_size=8), data)
    env = dict(os.environ, BATCHES=str(-(-1437 // BATCH)), PYTHONUNBUFFERED="1")
    ref = root / "reference"
    done = _train(spec, data, ref, env)
    assert done.returncode == 0, done.stderr[-3000:]
    return {"root": root, "spec": spec, "data": data, "ref": ref, "env": env}


def _train_cmd(spec: dict, data: Path, out: Path) -> list[str]:
    return ["--spec", json.dumps(spec), "--data", str(data), "--out", str(out)]


def _train(spec, data, out, env, timeout=300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "normbench.cli", "train", *_train_cmd(spec, data, out)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


def _snapshot(run: Path) -> dict:
    files = {p.name: p.stat().st_size for p in run.iterdir()} if run.exists() else {}
    metrics = run / "metrics.jsonl"
    epochs = [r for r in read_records(metrics) if r["kind"] == "epoch"] if metrics.exists() else []
    return {"files": files, "records": len(epochs)}


@pytest.fixture(scope="module")
def killed(setup):
    """Every kill of KILLS, then a plain rerun of each; the processes of each phase run side by side."""
    root, spec, data, env = setup["root"], setup["spec"], setup["data"], setup["env"]
    runs, procs = {}, {}
    for i, (moment, at, _) in enumerate(KILLS):
        out = root / f"kill{i}-{moment}-{at}"
        runs[i] = out
        if moment == "random":
            cmd = [sys.executable, "-m", "normbench.cli", "train", *_train_cmd(spec, data, out)]
        else:
            cmd = [sys.executable, "-c", HARNESS, moment, str(at), "train", *_train_cmd(spec, data, out)]
        procs[i] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    # A random moment within the next 1.5 epochs after epoch `at` (at <= 2 of 4: always before the end).
    epoch_s = [r["seconds"] for r in read_records(setup["ref"] / "metrics.jsonl") if r["kind"] == "epoch"]
    rng = random.Random(20261123)
    deadline = time.time() + 300
    pending_random = {i for i, (moment, _, _) in enumerate(KILLS) if moment == "random"}
    delays = {i: rng.uniform(0.0, 1.5 * sum(epoch_s) / len(epoch_s)) for i in pending_random}
    while pending_random and time.time() < deadline:
        for i in list(pending_random):
            _, at, _ = KILLS[i]
            metrics = runs[i] / "metrics.jsonl"
            if metrics.exists() and sum(r["kind"] == "epoch" for r in read_records(metrics)) >= at:
                time.sleep(delays[i])
                procs[i].send_signal(signal.SIGKILL)
                pending_random.discard(i)
        time.sleep(0.02)
    results = {}
    for i, proc in procs.items():
        out, err = proc.communicate(timeout=max(1.0, deadline - time.time()))
        results[i] = {"kill_rc": proc.returncode, "kill_err": err, "before": _snapshot(runs[i])}
    reruns = {
        i: subprocess.Popen(
            [sys.executable, "-m", "normbench.cli", "train", *_train_cmd(spec, data, runs[i])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in runs
    }
    for i, proc in reruns.items():
        out, err = proc.communicate(timeout=300)
        results[i].update(rc=proc.returncode, out=out, err=err, run=runs[i])
    return results


@pytest.mark.parametrize("case", range(len(KILLS)), ids=[f"{m}@epoch{a}" for m, a, _ in KILLS])
def test_sigkill_then_rerun_ends_with_the_uninterrupted_metrics(killed, setup, case):
    moment, at, resumes_after = KILLS[case]
    r = killed[case]
    assert r["kill_rc"] == -signal.SIGKILL, (
        f"the process was not killed: {r['kill_rc']} {r['kill_err'][-2000:]}"
    )
    assert r["rc"] == 0, r["err"][-3000:]
    before = r["before"]
    if moment == "after_record":
        assert before["records"] == at and "resume.pt" in before["files"]  # the log ran one epoch ahead
    if moment == "half_written":
        tmp = [n for n in before["files"] if n.startswith("resume.pt.") and n.endswith(".tmp")]
        assert len(tmp) == 1 and 0 < before["files"][tmp[0]] < before["files"]["resume.pt"]
    if moment == "between_renames":
        assert "resume.pt" not in before["files"] and "resume.pt.prev" in before["files"]
    if moment == "before_provenance":
        assert "checkpoint.pt" in before["files"] and "provenance.json" not in before["files"]
    if resumes_after is None:  # a random moment: whatever the checkpoint held
        resumes_after = 0
        for line in r["out"].splitlines():
            if "resuming after epoch" in line:
                resumes_after = int(line.rsplit(" ", 1)[1])
        assert resumes_after >= at - 1
    if resumes_after:
        assert f"resuming after epoch {resumes_after}" in r["out"]
        assert "unreadable" not in r["err"]
    else:
        assert "resuming" not in r["out"]
    run, ref = r["run"], setup["ref"]
    assert without_timing(read_records(run / "metrics.jsonl")) == without_timing(
        read_records(ref / "metrics.jsonl")
    )
    assert len(read_records(run / "metrics.jsonl")) == EPOCHS
    assert _same_weights(_final_weights(run), _final_weights(ref))
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["status"] == "completed" and len(prov["attempts"]) == (2 if resumes_after else 1)
    # (code_changes is not checked here: other work committed to this checkout mid-test is a real change)
    assert not {"resume.pt", "resume.pt.prev", "checkpoint.pt.prev"} & {p.name for p in run.iterdir()}


# --- corrupt checkpoints ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpointed(setup):
    """A run killed right after epoch 3's checkpoint: resume.pt holds epoch 3, resume.pt.prev epoch 2."""
    out = setup["root"] / "checkpointed"
    cmd = [sys.executable, "-c", HARNESS, "after_checkpoint", "3", "train"]
    cmd += _train_cmd(setup["spec"], setup["data"], out)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=setup["env"], timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert torch.load(out / "resume.pt", weights_only=False)["epoch"] == 3
    assert torch.load(out / "resume.pt.prev", weights_only=False)["epoch"] == 2
    return out


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _garble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    rng = random.Random(0)
    for i in range(0, len(data), 97):
        data[i] = rng.randrange(256)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage, resumes_after",
    [("truncated", 2), ("garbled", 2), ("both_truncated", 0), ("empty", 2)],
)
def test_corrupt_checkpoint_is_reported_and_the_previous_one_used(
    setup, checkpointed, tmp_path, damage, resumes_after
):
    run = tmp_path / "run"
    shutil.copytree(checkpointed, run)
    if damage == "truncated":
        _truncate(run / "resume.pt")
    elif damage == "garbled":
        _garble(run / "resume.pt")
    elif damage == "empty":
        (run / "resume.pt").write_bytes(b"")
    else:
        _truncate(run / "resume.pt")
        _truncate(run / "resume.pt.prev")
    result = _train(setup["spec"], setup["data"], run, setup["env"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"checkpoint {run / 'resume.pt'} is unreadable" in result.stderr
    assert "trying the previous one" in result.stderr
    if resumes_after:
        assert f"resuming after epoch {resumes_after}" in result.stdout
    else:
        assert f"checkpoint {run / 'resume.pt.prev'} is unreadable" in result.stderr
        (last,) = [line for line in result.stderr.splitlines() if "resume.pt.prev is unreadable" in line]
        assert last.endswith("; starting afresh")
        assert "resuming" not in result.stdout
    ref = setup["ref"]
    assert without_timing(read_records(run / "metrics.jsonl")) == without_timing(
        read_records(ref / "metrics.jsonl")
    )
    assert _same_weights(_final_weights(run), _final_weights(ref))


# --- one writer per run folder, finished runs, stale resume states, damaged logs, full disks ---------------


def _files(run: Path) -> dict:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(run.iterdir())}


def test_a_refused_writer_waits_for_the_holder_to_name_itself(tmp_path, monkeypatch):
    """The holder writes its identity only after taking the lock: a writer refused in between reads the lock
    file again until it is there (the CI race: 'host ?, pid ?'), and says '?' only when it never comes."""
    import fcntl
    import json
    import threading
    import time

    from normbench.training import trainer

    folder = tmp_path / "run"
    folder.mkdir()
    holder = open(folder / trainer.LOCK_NAME, "a+", encoding="utf-8")  # noqa: SIM115
    fcntl.flock(holder.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def name_itself_late():
        time.sleep(0.3)
        holder.write(json.dumps({"host": "h1", "pid": 4242, "started": "then"}))
        holder.flush()

    late = threading.Thread(target=name_itself_late)
    late.start()
    with pytest.raises(trainer.RunFolderBusy, match=r"\(host h1, pid 4242, started then\)"):
        trainer.lock_run_folder(folder)
    late.join()
    holder.seek(0)
    holder.truncate()
    holder.flush()
    monkeypatch.setattr(trainer, "HOLDER_WAIT_SECONDS", 0.1)
    with pytest.raises(trainer.RunFolderBusy, match=r"\(host \?, pid \?, started \?\)"):
        trainer.lock_run_folder(folder)
    holder.close()


def test_second_writer_of_a_run_folder_exits_75_and_the_log_is_one_clean_run(setup, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "normbench.cli", "train", *_train_cmd(setup["spec"], setup["data"], run)]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=setup["env"])
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    rcs = [p.returncode for p in procs]
    assert sorted(rcs) == [0, 75], [(rc, err[-2000:]) for rc, (_, err) in zip(rcs, outputs, strict=True)]
    winner, loser = rcs.index(0), rcs.index(75)
    assert re.fullmatch(
        rf"normbench train: error: run folder {re.escape(str(run))} is being written by another process "
        rf"\(host {re.escape(socket.gethostname())}, pid {procs[winner].pid}, started \d{{4}}-\d\d-\d\dT[\d:]+\S*\)",
        outputs[loser][1].strip(),
    ), outputs[loser][1]
    assert without_timing(read_records(run / "metrics.jsonl", allow_partial_last=False)) == without_timing(
        read_records(setup["ref"] / "metrics.jsonl")
    )
    assert _same_weights(_final_weights(run), _final_weights(setup["ref"]))
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]


def test_temporary_files_are_unique_to_the_process(tmp_path):
    from normbench.runs.folder import temp_path

    names = {temp_path(tmp_path / "resume.pt").name for _ in range(50)}
    assert len(names) == 50 and all(n.startswith(f"resume.pt.{os.getpid()}-") for n in names)


def test_finished_run_is_not_retrained_and_no_file_is_touched(setup, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(setup["ref"], run)
    before = _files(run)
    result = _train(setup["spec"], setup["data"], run, setup["env"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{run}: complete (completed after {EPOCHS} epochs); nothing to do" in result.stdout
    assert _files(run) == before


def test_force_moves_a_finished_run_aside_then_retrains(setup, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(setup["ref"], run)
    old = {name: data for name, (_, data) in _files(run).items() if name != ".lock"}
    cmd = [sys.executable, "-m", "normbench.cli", "train", *_train_cmd(setup["spec"], setup["data"], run)]
    result = subprocess.run([*cmd, "--force"], capture_output=True, text=True, env=setup["env"], timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming" not in result.stdout and f"completed after {EPOCHS} epochs" in result.stdout
    (aside,) = tmp_path.glob("run.old-*")
    assert {name: data for name, (_, data) in _files(aside).items()} == old
    new = read_records(run / "metrics.jsonl", allow_partial_last=False)
    assert without_timing(new) == without_timing(read_records(aside / "metrics.jsonl"))
    assert new != read_records(aside / "metrics.jsonl")  # trained again: other timings
    from normbench.runs.folder import find_metrics

    assert find_metrics([tmp_path]) == [run / "metrics.jsonl"]  # tables do not count the old copy


def test_resume_state_that_does_not_fit_the_model_is_moved_aside_and_the_run_restarts(setup, tmp_path):
    from normbench.models import build_model

    run = tmp_path / "run"
    run.mkdir()
    other = build_model("preact_resnet20", num_classes=10, in_channels=1)  # not the run's plain20
    state = {
        "config": setup["spec"],
        "epoch": 2,
        "step": 12,
        "records": [],
        "train_seconds": 1.0,
        "model": other.state_dict(),
        "optimizer": {},
        "method": {},
        "generator": torch.Generator().get_state(),
        "torch_rng": torch.get_rng_state(),
    }
    torch.save(state, run / "resume.pt")
    result = _train(setup["spec"], setup["data"], run, setup["env"])
    assert result.returncode == 0, result.stderr[-3000:]
    (stale,) = run.glob("resume.pt.stale-*")
    assert f"{run / 'resume.pt'}: does not load into this run's model (RuntimeError: " in result.stderr
    assert f"moved resume.pt aside to {stale}; starting afresh" in result.stderr
    assert "resuming" not in result.stdout
    ref = setup["ref"]
    assert without_timing(read_records(run / "metrics.jsonl")) == without_timing(
        read_records(ref / "metrics.jsonl")
    )
    assert _same_weights(_final_weights(run), _final_weights(ref))


def test_damaged_last_line_of_a_finished_log_is_an_error_when_loaded(setup, tmp_path):
    from normbench.runs.folder import load_run

    run = tmp_path / "run"
    shutil.copytree(setup["ref"], run)
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write('{"kind": "epoch", "epo')
    with pytest.raises(
        ValueError, match=re.escape(f"{run / 'metrics.jsonl'}:{EPOCHS + 1}: not a JSON record")
    ):
        load_run(run / "metrics.jsonl")
    # the trainer's resume path (a log being written) still tolerates a killed writer's last line
    assert len(read_records(run / "metrics.jsonl", allow_partial_last=True)) == EPOCHS


@pytest.mark.parametrize("where, code", [("save", "ENOSPC"), ("fsync", "EROFS"), ("save", "EACCES")])
def test_io_failure_ends_in_one_line_and_leaves_no_temporary(
    setup, tmp_path, monkeypatch, capsys, where, code
):
    import errno

    from normbench.training import checkpoint

    err = OSError(getattr(errno, code), os.strerror(getattr(errno, code)))
    if where == "save":

        def failing_save(obj, fh, *args, **kwargs):
            fh.write(b"half a checkpoint")
            raise err

        monkeypatch.setattr(checkpoint.torch, "save", failing_save)
    else:

        def failing_fsync(fd):
            raise err

        monkeypatch.setattr(os, "fsync", failing_fsync)
    run = tmp_path / "run"
    rc = cli.main(["train", *_train_cmd(setup["spec"], setup["data"], run)])
    assert rc == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert re.fullmatch(
        rf"normbench train: error: {re.escape(str(run))}/[\w.]+: {re.escape(os.strerror(err.errno))}",
        lines[0],
    )
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]


def test_save_atomic_never_leaves_a_partial_checkpoint(tmp_path, monkeypatch):
    from normbench.training import checkpoint

    path = tmp_path / "resume.pt"
    checkpoint.save_atomic({"epoch": 1}, path)
    checkpoint.save_atomic({"epoch": 2}, path)

    def failing_save(obj, fh, *args, **kwargs):
        fh.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save_atomic({"epoch": 3}, path)
    monkeypatch.undo()
    assert checkpoint.load_latest(path, log=lambda m: None) == {"epoch": 2}
    assert torch.load(path.with_name("resume.pt.prev"), weights_only=False) == {"epoch": 1}


# --- the fault hook, evaluation health, code changes between attempts ------------------------------------


class Killed(Exception):
    """Raised by a test's hook: the in-process stand-in for a kill."""


def _short(setup, epochs=2) -> dict:
    spec = copy.deepcopy(setup["spec"])
    spec["epochs"] = epochs
    return spec


def test_fault_hook_fires_at_every_named_point(setup, tmp_path):
    from normbench.training import trainer

    seen: list[tuple[str, dict]] = []
    spec = _short(setup)
    with trainer.injected(lambda point, run, **info: seen.append((point, {"run": run, **info}))):
        trainer.train_run(spec, tmp_path / "run", setup["data"], log=lambda m: None)
    assert trainer.FAULTS == []
    points = [p for p, _ in seen]
    assert set(points) == set(trainer.FAULT_POINTS), set(trainer.FAULT_POINTS) - set(points)
    batches, epochs = int(setup["env"]["BATCHES"]), spec["epochs"]
    assert points.count("step") == batches * epochs
    assert [i["step"] for p, i in seen if p == "step" and i["epoch"] == 1] == list(range(1, batches + 1))
    assert [i["epoch"] for p, i in seen if p == "evaluated"] == [1, 2]
    assert [i["record"]["epoch"] for p, i in seen if p == "record"] == [1, 2]
    saved = [(Path(i["path"]).name, i["epoch"]) for p, i in seen if p == "checkpoint_saved"]
    assert saved == [("resume.pt", 1), ("resume.pt", 2), ("checkpoint.pt", epochs)]
    for point in ("checkpoint_write", "checkpoint_tmp"):
        assert points.count(point) == epochs + 1
    assert points.count("checkpoint_rotated") == epochs - 1  # resume.pt replaced from epoch 2 on
    assert points.count("provenance") == 1
    assert all(i["run"] == (tmp_path / "run").resolve() for _, i in seen)


@pytest.mark.parametrize(
    "loss, why", [(float("nan"), "non-finite test loss (nan)"), (9.4e10, "above 100 x ln(10)")]
)
def test_unhealthy_evaluation_is_recorded_counted_and_shown_in_the_tables(setup, tmp_path, loss, why):
    from normbench.outputs.tables import write_tables
    from normbench.runs.folder import load_run
    from normbench.training import trainer

    def bad_evaluation(point, run, **info):
        if point == "evaluated" and info["epoch"] == 2:
            info["test"]["test_loss"] = loss

    run, lines = tmp_path / "run", []
    with trainer.injected(bad_evaluation):
        result = trainer.train_run(_short(setup, 3), run, setup["data"], log=lines.append)
    assert result["status"] == "completed"  # a recorded event, not an error
    records = read_records(run / "metrics.jsonl", allow_partial_last=False)
    assert [(r["kind"], r["epoch"]) for r in records] == [
        ("epoch", 1),
        ("eval_health", 2),
        ("epoch", 2),
        ("epoch", 3),
    ]
    health = records[1]
    assert why in health["reason"] and set(health) == {"kind", "epoch", "test_loss", "reason"}
    assert any("epoch 2: UNHEALTHY EVALUATION" in line for line in lines)
    summary = load_run(run / "metrics.jsonl").summary
    assert summary["eval_unhealthy"] == 1 and summary["eval_unhealthy_epochs"] == [2]
    write_tables([load_run(run / "metrics.jsonl")], tmp_path / "tables")
    table = (tmp_path / "tables" / "gap.md").read_text()
    header, _, row = table.strip().splitlines()[-3:]
    cells = dict(
        zip((c.strip() for c in header.split("|")), (c.strip() for c in row.split("|")), strict=True)
    )
    assert cells["eval unhealthy"] == "1" and cells["diverged"] == "0"
    csv = (tmp_path / "tables" / "gap.csv").read_text().splitlines()
    assert dict(zip(csv[0].split(","), csv[1].split(","), strict=True))["eval_unhealthy"] == "1"


def test_code_change_between_attempts_is_recorded_in_provenance(setup, tmp_path):
    from normbench.training import trainer
    from normbench.training.provenance import code_fingerprint

    def kill_after_epoch_1(point, run, **info):
        if point == "checkpoint_saved" and Path(info["path"]).name == "resume.pt" and info["epoch"] == 1:
            raise Killed

    run, spec = tmp_path / "run", _short(setup)
    with trainer.injected(kill_after_epoch_1), pytest.raises(Killed):
        trainer.train_run(spec, run, setup["data"], log=lambda m: None)
    state = torch.load(run / "resume.pt", weights_only=False)
    old = {"sha": "0" * 40, "dirty": False, "source": "0123456789abcdef"}  # the first attempt's code
    state["attempts"][-1]["code"] = old
    torch.save(state, run / "resume.pt")
    lines = []
    trainer.train_run(spec, run, setup["data"], log=lines.append)
    (said,) = [line for line in lines if "the code changed" in line]
    assert said.startswith(f"{run.resolve()}: the code changed between attempts 1 and 2 (git 000000000000")
    assert said.endswith("; recorded in provenance.json")
    prov = json.loads((run / "provenance.json").read_text())
    new = code_fingerprint()
    assert prov["code_changes"] == [{"attempt": 2, "after_epoch": 1, "old": old, "new": new}]
    assert [(a["attempt"], a["resumed_after"], a["code"]) for a in prov["attempts"]] == [
        (1, 0, old),
        (2, 1, new),
    ]
    assert prov["source_hash"] == new["source"]


# --- Snakemake's own restart --------------------------------------------------------------------------------


def _workflow(tmp_path: Path, experiments: dict) -> Path:
    copy_workflow(tmp_path)
    config = {"name": "faults", "threads": 1, "device": "cpu", "experiments": experiments}
    (tmp_path / "faults.yaml").write_text(yaml.safe_dump(config))
    return tmp_path / "results" / "faults"


def _restart_experiment(seeds=(0, 1, 2), epochs=6) -> dict:
    exp = copy.deepcopy(TINY_EXPERIMENT)
    exp.update(models=["plain20"], seeds=list(seeds), epochs=epochs, batch_size=BATCH)
    return {"gap": exp}


def _smk(cwd: Path, *args, env=None, timeout=600) -> subprocess.CompletedProcess:
    cmd = ["snakemake", "--configfile", "faults.yaml", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)


def _targets(res: Path, seeds) -> list[str]:
    return [
        str(res.relative_to(res.parents[1]) / f"runs/gap/plain20/none/seed{s}/metrics.jsonl") for s in seeds
    ]


def _fingerprint(run: Path) -> dict:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(run.iterdir())}


def _reference_of(run: Path, tmp_path: Path) -> list[dict]:
    """The same run's metrics from one uninterrupted `normbench train` with its own config.json."""
    spec = json.loads((run / "config.json").read_text())
    data = next((run.parents[4] / "data").glob("*.pt"))
    out = tmp_path / f"reference-{spec['seed']}"
    result = _train(spec, data, out, dict(os.environ))
    assert result.returncode == 0, result.stderr[-2000:]
    return read_records(out / "metrics.jsonl")


def _planned_train_seeds(result: subprocess.CompletedProcess) -> set[int]:
    """Seeds of the training jobs a dry run plans."""
    text = result.stdout + result.stderr
    seeds, rule = set(), None
    for line in text.splitlines():
        if line.startswith("rule "):
            rule = line[5:].rstrip(":")
        m = re.search(r"wildcards: .*seed=(\d+)", line)
        if m and rule == "train":
            seeds.add(int(m.group(1)))
    return seeds


def test_snakemake_killed_then_rerun_incomplete_loses_no_finished_run(tmp_path):
    res = _workflow(tmp_path, _restart_experiment())
    seeds = (0, 1, 2)
    runs = {s: res / f"runs/gap/plain20/none/seed{s}" for s in seeds}
    cmd = ["snakemake", "--configfile", "faults.yaml", "--cores", "2", *_targets(res, seeds)]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    done_since = {}
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            now = time.time()
            for s, r in runs.items():
                if (r / "provenance.json").exists():
                    done_since.setdefault(s, now)
            settled = [s for s, t in done_since.items() if now - t > 3.0]  # Snakemake has seen it end
            going = [s for s, r in runs.items() if (r / "resume.pt").exists() and s not in done_since]
            if settled and going:
                break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and its jobs, as a crashed node would lose them
        proc.wait(timeout=60)
    interrupted = [s for s, r in runs.items() if (r / "resume.pt").exists()]
    assert interrupted and done_since, "never saw one run finished while another was running"
    fingerprints = {s: _fingerprint(r) for s, r in runs.items() if r.exists()}
    assert _smk(tmp_path, "--unlock", "--cores", "1").returncode == 0  # a lock a killed Snakemake may leave
    refused = _smk(tmp_path, "--cores", "2", *_targets(res, seeds))
    assert refused.returncode != 0 and "incomplete" in (refused.stdout + refused.stderr).lower()
    plan = _smk(tmp_path, "-n", "--cores", "2", "--rerun-incomplete", *_targets(res, seeds))
    rerun = _planned_train_seeds(plan)
    finished = set(seeds) - rerun
    assert finished and finished <= set(done_since), (finished, done_since, plan.stdout[-3000:])
    assert set(interrupted) <= rerun
    result = _smk(tmp_path, "--cores", "2", "--rerun-incomplete", *_targets(res, seeds))
    assert result.returncode == 0, result.stderr[-4000:]
    for s in finished:
        assert _fingerprint(runs[s]) == fingerprints[s], f"finished run seed{s} was touched by the restart"
    for s in interrupted:
        log = (res / f"logs/train/gap/plain20/none/seed{s}.log").read_text()
        assert "resuming after epoch" in log, log
    for s in seeds:
        assert len(read_records(runs[s] / "metrics.jsonl")) == 6
    s = interrupted[0]
    assert without_timing(read_records(runs[s] / "metrics.jsonl")) == without_timing(
        _reference_of(runs[s], tmp_path)
    )


WRAPPER = """#!/usr/bin/env bash
# normbench, except that the first `train` of seed 1 is SIGKILLed after its second epoch.
echo "$*" >> "$WRAP_LOG"
out=""
prev=""
for a in "$@"; do [ "$prev" = --out ] && out=$a; prev=$a; done
if [ "$1" = train ] && [[ "$out" == */seed1 ]] && [ ! -e "$WRAP_MARK" ]; then
  touch "$WRAP_MARK"
  "$REAL_NORMBENCH" "$@" &
  pid=$!
  while kill -0 $pid 2>/dev/null; do
    n=$(cat "$out/metrics.jsonl" 2>/dev/null | wc -l)
    if [ "$n" -ge 2 ]; then kill -9 $pid; wait $pid; exit 137; fi
    sleep 0.05
  done
  wait $pid
  exit 1
fi
exec "$REAL_NORMBENCH" "$@"
"""


def test_snakemake_retries_resume_the_killed_job_and_rerun_nothing_else(tmp_path):
    res = _workflow(tmp_path, _restart_experiment())
    seeds = (0, 1, 2)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "normbench").write_text(WRAPPER)
    (bin_dir / "normbench").chmod(0o755)
    env = dict(
        os.environ,
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        WRAP_LOG=str(tmp_path / "calls.log"),
        WRAP_MARK=str(tmp_path / "killed-once"),
        REAL_NORMBENCH=shutil.which("normbench"),
    )
    result = _smk(tmp_path, "--cores", "2", "--retries", "1", *_targets(res, seeds), env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "killed-once").exists()
    calls = (tmp_path / "calls.log").read_text().splitlines()
    trains = [c for c in calls if c.startswith("train ")]
    per_seed = {s: sum(c.rstrip().endswith(f"/seed{s}") for c in trains) for s in seeds}
    assert per_seed == {0: 1, 1: 2, 2: 1}, calls
    assert sum(c.startswith("data ") for c in calls) == 1
    log = (res / "logs/train/gap/plain20/none/seed1.log").read_text()
    assert "resuming after epoch" in log, log
    # each attempt keeps its output in the log, after its own header: the killed one's epochs, then the retry
    headers = [i for i, line in enumerate(log.splitlines()) if line.startswith("=== attempt ")]
    assert [log.splitlines()[i].split()[2] for i in headers] == ["1", "2"], log
    first = "\n".join(log.splitlines()[headers[0] : headers[1]])
    assert "epoch 1/6" in first and "resuming" not in first, log
    assert re.fullmatch(
        r"=== attempt 2 \(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\) ===", log.splitlines()[headers[1]]
    )
    run = res / "runs/gap/plain20/none/seed1"
    assert without_timing(read_records(run / "metrics.jsonl")) == without_timing(_reference_of(run, tmp_path))


def test_training_jobs_append_to_their_log_after_an_attempt_header(tmp_path):
    """Both training rules (one run; a pack of seeds), rendered by Snakemake and run twice as attempts 1 (which
    fails) and 2 under ``set -euo pipefail``, with the log deleted before each as Snakemake does: the log holds
    both attempts, each after its header, and the kept per-attempt copy is gone once the job succeeds."""
    experiments = _restart_experiment(seeds=(0,), epochs=1)
    experiments["packed"] = {**copy.deepcopy(experiments["gap"]), "seeds": [0, 1], "pack": 2}
    res = _workflow(tmp_path, experiments)
    targets = [
        str(res.relative_to(tmp_path) / f"runs/{e}/plain20/none/seed0/metrics.jsonl") for e in experiments
    ]
    plan = _smk(tmp_path, "-n", "--printshellcmds", "--cores", "1", *targets)
    assert plan.returncode == 0, plan.stderr[-3000:]
    trains = [
        line.strip().removeprefix("Shell command: ")
        for line in plan.stdout.splitlines()
        if "normbench train" in line
    ]
    logs = [re.search(r"\| tee -a (\S+) ", line).group(1) for line in trains]
    assert sorted(Path(log).name for log in logs) == ["seed0.log", "seeds0_1.log"], trains
    for line, log in zip(trains, logs, strict=True):
        assert line.startswith("a=1; ") and f"tee -a {log} {log}.attempt-$a; rm -f {log}.attempt-*" in line
        log = tmp_path / log
        log.parent.mkdir(parents=True, exist_ok=True)
        for attempt, command in ((1, "sh -c 'echo first; exit 1'"), (2, "echo second")):
            log.unlink(missing_ok=True)  # Snakemake deletes a job's log before each attempt
            shell = line.replace("a=1; ", f"a={attempt}; ", 1)
            shell = re.sub(r"workflow/scripts/gpu-slot\.sh .*? 2>&1 \|", f"{command} 2>&1 |", shell)
            done = subprocess.run(["bash", "-c", f"set -euo pipefail; {shell}"], cwd=tmp_path)
            assert done.returncode == (1 if attempt == 1 else 0)
        lines = log.read_text().splitlines()
        assert [re.sub(r"\(.*\)", "(T)", x) for x in lines] == [
            "=== attempt 1 (T) ===",
            "first",
            "=== attempt 2 (T) ===",
            "second",
        ], lines
        assert not list(log.parent.glob(log.name + ".attempt-*"))


# --- bad input: stops early, names the file or key, overwrites nothing -----------------------------------------


@pytest.fixture
def prepared(tmp_path):
    """An existing prepared-data file that a failing `normbench data` must leave alone."""
    out = tmp_path / "prepared.pt"
    out.write_bytes(b"earlier result")
    return out


def test_archive_with_wrong_checksum_stops_naming_the_data(tmp_path, prepared, monkeypatch, capsys):
    import torchvision.datasets.utils as tv_utils

    def fake_download(url, fpath, *args, **kwargs):  # a download that delivers the wrong bytes
        Path(fpath).write_bytes(b"not the CIFAR-10 archive")

    monkeypatch.setattr(tv_utils, "_urlretrieve", fake_download)
    monkeypatch.setattr(tv_utils, "_get_redirect_url", lambda url, max_hops=3: url)
    root = tmp_path / "data"
    rc = cli.main(["data", "--dataset", "cifar10", "--root", str(root), "--download", "--out", str(prepared)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "normbench data: error: CIFAR10" in err and str(root) in err and "corrupted" in err
    assert "cifar-10-batches-py" in err  # what was expected under the root
    assert prepared.read_bytes() == b"earlier result"


def test_archive_with_wrong_checksum_names_the_archive_and_its_md5(tmp_path, prepared, monkeypatch, capsys):
    import torchvision.datasets.utils as tv_utils

    monkeypatch.setattr(tv_utils, "_urlretrieve", lambda url, fpath, *a, **k: Path(fpath).write_bytes(b"x"))
    monkeypatch.setattr(tv_utils, "_get_redirect_url", lambda url, max_hops=3: url)
    rc = cli.main(
        ["data", "--dataset", "cifar10", "--root", str(tmp_path), "--download", "--out", str(prepared)]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "cifar-10-python.tar.gz" in err and "c58f30108f718f92721af3b95e74349a" in err
    assert prepared.read_bytes() == b"earlier result"


def test_missing_data_root_without_download_stops_naming_root_and_key(tmp_path, prepared, capsys):
    root = tmp_path / "no-such-root"
    rc = cli.main(["data", "--dataset", "cifar10", "--root", str(root), "--out", str(prepared)])
    err = capsys.readouterr().err
    assert rc == 2
    assert str(root) in err and "cifar-10-batches-py" in err and "data.download: true" in err
    assert not root.exists() or not any(root.iterdir())  # nothing fetched without permission
    assert prepared.read_bytes() == b"earlier result"


def _config_file(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    "change, expected",
    [
        (
            lambda c: c["experiments"]["gap"].update(epochs="ten"),
            "experiments.gap.epochs: 'ten' is not of type",
        ),
        (lambda c: c.update(threads=1.5), "threads: 1.5 is not of type 'integer'"),
        (lambda c: c.update(container=["a.sif"]), "container: ['a.sif'] is not of type 'string'"),
        (lambda c: c["resources"].update(gpus="one"), "resources.gpus: 'one' is not of type 'integer'"),
        (lambda c: c["experiments"]["gap"].update(epoch=3), "'epoch' was unexpected"),
        (
            lambda c: c.update(result_dir="x"),
            "<top level>: Additional properties are not allowed ('result_dir' was unexpected)",
        ),
        (lambda c: c["experiments"]["gap"]["optimizer"].update(nme="sgd"), "'nme' was unexpected"),
        (lambda c: c["experiments"]["gap"].update(models=["resnet9000"]), "experiments.gap.models"),
        (lambda c: c["experiments"]["gap"].update(methods=["procrustez"]), "experiments.gap.methods"),
    ],
    ids=[
        "wrong-type",
        "float-for-int",
        "container-type",
        "resources-type",
        "unknown-key",
        "unknown-top-key",
        "unknown-nested-key",
        "unknown-model",
        "unknown-method",
    ],
)
def test_bad_config_names_the_file_and_key(tmp_path, tiny_config, change, expected):
    tiny_config["resources"] = {}
    change(tiny_config)
    path = _config_file(tmp_path, tiny_config)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert str(path) in msg and expected in msg, msg
    if "models" in expected:
        assert "resnet9000" in msg and "plain20" in msg  # the valid names are listed
    if "methods" in expected:
        assert "procrustez" in msg and "none" in msg


def test_bad_config_stops_the_workflow_before_any_result_is_overwritten(tmp_path):
    res = _workflow(tmp_path, _restart_experiment(seeds=(0,), epochs=1))
    run = res / "runs/gap/plain20/none/seed0"
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text('{"kind": "epoch", "epoch": 1}\n')
    before = _fingerprint(run)
    config = yaml.safe_load((tmp_path / "faults.yaml").read_text())
    config["experiments"]["gap"]["epochs"] = "ten"
    (tmp_path / "faults.yaml").write_text(yaml.safe_dump(config))
    result = _smk(tmp_path, "--cores", "1", "--forceall", timeout=120)
    out = result.stdout + result.stderr
    assert result.returncode != 0 and "epochs" in out and "'ten' is not of type 'integer'" in out, out[-3000:]
    assert _fingerprint(run) == before
    assert sorted(p.name for p in res.iterdir()) == ["runs"]


def test_reference_file_with_a_bad_entry_stops_compare(tmp_path, capsys):
    from normbench.references import reference_files

    source = next(p for p in reference_files() if p.stem == "zaeemzadeh2020")
    doc = yaml.safe_load(source.read_text())
    doc["entries"][1]["value"] = "twelve"
    bad = tmp_path / "refs" / "zaeemzadeh2020.yaml"
    bad.parent.mkdir()
    bad.write_text(yaml.safe_dump(doc, sort_keys=False))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "comparison.csv").write_text("earlier result\n")
    rc = cli.main(["compare", str(tmp_path), "--out-dir", str(out_dir), "--references", str(bad)])
    err = capsys.readouterr().err
    assert rc == 2
    assert str(bad) in err and "entries.1.value" in err and "'twelve' is not of type 'number', 'null'" in err
    assert (out_dir / "comparison.csv").read_text() == "earlier result\n"
    assert sorted(p.name for p in out_dir.iterdir()) == ["comparison.csv"]


# --- divergence ------------------------------------------------------------------------------------------


def test_diverged_run_is_recorded_and_its_siblings_still_run(tmp_path):
    boom = copy.deepcopy(TINY_EXPERIMENT)
    boom.update(models=["plain20"], seeds=[0, 1], epochs=2, optimizer={"name": "sgd", "lr": 1.0e6})
    calm = copy.deepcopy(TINY_EXPERIMENT)
    calm.update(models=["plain20"], seeds=[0], epochs=2)
    res = _workflow(tmp_path, {"boom": boom, "calm": calm})
    result = _smk(tmp_path, "--cores", "2")
    assert result.returncode == 0, result.stderr[-4000:]
    for seed in (0, 1):
        run = res / f"runs/boom/plain20/none/seed{seed}"
        records = read_records(run / "metrics.jsonl")
        assert records[-1]["kind"] == "diverged" and "non-finite" in records[-1]["reason"]
        assert json.loads((run / "provenance.json").read_text())["status"] == "diverged"
        assert torch.load(run / "checkpoint.pt", weights_only=False)["status"] == "diverged"
        assert "DIVERGED" in (res / f"logs/train/boom/plain20/none/seed{seed}.log").read_text()
    sibling = res / "runs/calm/plain20/none/seed0"
    assert [r["kind"] for r in read_records(sibling / "metrics.jsonl")] == ["epoch", "epoch"]
    assert json.loads((sibling / "provenance.json").read_text())["status"] == "completed"
    assert "diverged" in (res / "tables/boom.md").read_text().lower()
    assert (res / "report.html").exists()
