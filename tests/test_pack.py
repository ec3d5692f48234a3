"""Packed seeds (engine.pack, normbench.training.pack): several runs in one process compute what they compute alone."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import torch

from normbench.config import run_config, run_specs, validate_config
from normbench.runs.folder import read_records, without_timing
from normbench.training.pack import interleave
from normbench.training.trainer import train_pack, train_run


@pytest.fixture
def pack_cfgs(tiny_config):
    """Three seeds of pre-act ResNet-20 with probes (their records depend on the model's whole state)."""
    exp = tiny_config["experiments"]["gap"]
    exp.update(models=["preact_resnet20"], seeds=[0, 1, 2], epochs=2)
    exp["probes"] = {"names": ["grad_norm_ratio"], "every": 1, "batch": 32}
    config = validate_config(tiny_config)
    return [run_config(config, s) for s in run_specs(config)]


def _records(path):
    return without_timing(read_records(path / "metrics.jsonl"))


@pytest.mark.parametrize("engine", ["eager", "fast"])
def test_pack_equals_runs_alone(pack_cfgs, tmp_path, engine):
    for cfg in pack_cfgs:
        cfg["engine"]["name"] = engine
    quiet = lambda m: None  # noqa: E731
    for cfg in pack_cfgs:
        train_run(cfg, tmp_path / "alone" / str(cfg["seed"]), log=quiet)
    # Something that draws from torch's default generator between the members' turns must not leak into them.
    torch.manual_seed(12345)
    results = train_pack([(c, tmp_path / "pack" / str(c["seed"])) for c in pack_cfgs], log=quiet)
    assert [r["status"] for r in results] == ["completed"] * 3
    alone = [_records(tmp_path / "alone" / str(c["seed"])) for c in pack_cfgs]
    packed = [_records(tmp_path / "pack" / str(c["seed"])) for c in pack_cfgs]
    assert packed == alone
    assert alone[0] != alone[1]  # the seeds differ, so the test can tell them apart
    for c in pack_cfgs:
        a = torch.load(tmp_path / "alone" / str(c["seed"]) / "checkpoint.pt", weights_only=False)
        b = torch.load(tmp_path / "pack" / str(c["seed"]) / "checkpoint.pt", weights_only=False)
        for k, v in a["model"].items():
            torch.testing.assert_close(b["model"][k], v, rtol=0, atol=0, msg=k)
        prov = json.loads((tmp_path / "pack" / str(c["seed"]) / "provenance.json").read_text())
        assert prov["pack"] == [0, 1, 2]
    assert json.loads((tmp_path / "alone" / "0" / "provenance.json").read_text())["pack"] is None


def test_interrupted_pack_resumes(pack_cfgs, tmp_path):
    """A pack killed mid-way resumes each member from its own last epoch: here seed 0 from epoch 2 and seed 1
    from epoch 1 (killed while logging its epoch 2, before that epoch's checkpoint)."""
    cfgs = pack_cfgs[:2]
    for c in cfgs:
        c["epochs"] = 3
    runs = [(c, tmp_path / "pack" / str(c["seed"])) for c in cfgs]

    def interrupt(message):
        if "seed1] epoch 2/" in message:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_pack(runs, log=interrupt)
    assert all((out / "resume.pt").exists() for _, out in runs)
    assert not any((out / "checkpoint.pt").exists() for _, out in runs)
    messages = []
    train_pack(runs, log=messages.append)
    assert sum("seed0] resuming after epoch 2" in m for m in messages) == 1
    assert sum("seed1] resuming after epoch 1" in m for m in messages) == 1
    for c, out in runs:
        train_run(c, tmp_path / "alone" / str(c["seed"]), log=lambda m: None)
        assert _records(out) == _records(tmp_path / "alone" / str(c["seed"]))


def test_pack_refuses_mixed_runs(pack_cfgs, tmp_path):
    other = copy.deepcopy(pack_cfgs[1])
    other["optimizer"]["lr"] = 0.5
    with pytest.raises(ValueError, match="differ in seed only.*optimizer"):
        train_pack([(pack_cfgs[0], tmp_path / "a"), (other, tmp_path / "b")])
    with pytest.raises(ValueError, match="distinct"):
        train_pack([(pack_cfgs[0], tmp_path / "a"), (pack_cfgs[0], tmp_path / "b")])
    assert not (tmp_path / "a").exists()


def test_interleave_round_robin():
    order = []

    def member(name, n):
        for i in range(n):
            order.append((name, i))
            yield
        return name

    assert interleave([member("a", 2), member("b", 3)], torch.device("cpu")) == ["a", "b"]
    assert order == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("b", 2)]


def test_cli_trains_a_pack(pack_cfgs, tmp_path):
    cfgs = pack_cfgs[:2]
    for c in cfgs:
        c["epochs"] = 1
    args = [sys.executable, "-m", "normbench.cli", "train"]
    for c in cfgs:
        args += ["--spec", json.dumps(c), "--out", str(tmp_path / f"seed{c['seed']}")]
    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("completed after 1 epochs") == 2
    bad = subprocess.run(args[:-2], capture_output=True, text=True)
    assert bad.returncode != 0 and "one --out per --spec (2 --spec, 1 --out)" in bad.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_pack_on_gpu_matches_runs_alone(pack_cfgs, tmp_path):
    """On CUDA each member replays its CUDA graphs on its own stream; the metrics stay those of the runs alone
    (to float tolerance: the members' kernels overlap, and a few cuDNN kernels are not bitwise reproducible)."""
    cfgs = pack_cfgs[:2]
    for c in cfgs:
        c["device"] = "cuda"
        c["engine"]["name"] = "fast"
    for c in cfgs:
        train_run(c, tmp_path / "alone" / str(c["seed"]), log=lambda m: None)
    train_pack([(c, tmp_path / "pack" / str(c["seed"])) for c in cfgs], log=lambda m: None)
    for c in cfgs:
        a = read_records(tmp_path / "alone" / str(c["seed"]) / "metrics.jsonl")
        b = read_records(tmp_path / "pack" / str(c["seed"]) / "metrics.jsonl")
        ea = [r for r in a if r["kind"] == "epoch"]
        eb = [r for r in b if r["kind"] == "epoch"]
        assert len(ea) == len(eb) == c["epochs"]
        for x, y in zip(ea, eb, strict=True):
            assert x["train_loss"] == pytest.approx(y["train_loss"], rel=1e-3)
            assert abs(x["test_error"] - y["test_error"]) <= 1.0
        prov = json.loads((tmp_path / "pack" / str(c["seed"]) / "provenance.json").read_text())
        assert "fast+cuda_graphs" in prov["engine"]["engine"] and prov["pack"] == [0, 1]


def test_report_counts_a_packs_hours_once(tmp_path):
    from normbench.outputs.report import provenance_summary

    def write(name, seconds, pack):
        folder = tmp_path / name
        folder.mkdir()
        prov = {
            "git": {"sha": "abc", "dirty": False},
            "device_name": "cpu",
            "versions": {"torch": "2"},
            "engine": {"engine": "eager"},
            "train_seconds": seconds,
            "pack": pack,
        }
        (folder / "provenance.json").write_text(json.dumps(prov))

    write("a", 3600.0, [0, 1])  # a pack of two: one hour of wall clock, recorded by both members
    write("b", 3600.0, [0, 1])
    write("c", 1800.0, None)
    summary = provenance_summary(tmp_path)
    assert summary["train hours"] == "1.500" and summary["runs"] == "3 (2 trained in packs)"
    assert summary["engines"] == "eager"
