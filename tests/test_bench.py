"""``normbench bench``: the timing table and JSON on a tiny model, and the bf16 validation verdict."""

import json

import pytest

from normbench.cli.main import main
from normbench.config import run_config, run_specs, validate_config


def test_bench_cli_writes_table_and_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = ["bench", "--models", "preact_resnet20", "--steps", "2", "--warmup", "1", "--batch-size", "16"]
    assert main([*args, "--device", "cpu", "--pack", "2", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "images/s" in text and "synthetic uint8" in text and "cpu" in text and "2 seeds packed" in text
    result = json.loads(out.read_text())
    assert {"device", "data", "batch_size", "steps", "rows"} <= set(result)
    rows = result["rows"]
    assert [(r["engine"], r["pack"]) for r in rows] == [("eager", 1), ("fast", 1), ("fast", 2)]
    assert rows[0]["ratio"] == 1.0
    for r in rows:
        assert {"model", "engine_detail", "precision", "images_per_s", "seconds_per_epoch", "ratio"} <= set(r)
        assert r["images_per_s"] > 0 and r["seconds_per_epoch"] == pytest.approx(50_000 / r["images_per_s"])


def test_validate_bf16_writes_a_verdict(tiny_config, tmp_path):
    from normbench.studies.bench import validate_bf16
    from normbench.training.engine import bf16_validated

    tiny_config["experiments"]["gap"]["models"] = ["preact_resnet20"]
    tiny_config["experiments"]["gap"]["seeds"] = [0]
    config = validate_config(tiny_config)
    cfg = run_config(config, run_specs(config)[0])
    out = tmp_path / "bf16.json"
    verdict = validate_bf16(cfg, out, epochs=1, tolerance=100.0, work_dir=tmp_path / "w", log=lambda m: None)
    assert (
        json.loads(out.read_text()) == verdict and verdict["passed"] and verdict["arch"] == "preact_resnet20"
    )
    assert {"fp32", "bf16", "difference_pp", "tolerance_pp", "statistic"} <= set(verdict)
    assert verdict["fp32"]["tail_epochs"] == 1 and verdict["difference_pp"] == pytest.approx(
        verdict["bf16"]["final_test_error"] - verdict["fp32"]["final_test_error"]
    )
    cfg["engine"].update(precision="bf16", bf16_validation=str(out))
    assert bf16_validated(cfg)


def test_gpu_check_script_parses(repo):
    """scripts/gpu-check.sh (run where a GPU is lent): valid bash, and every normbench command in it parses."""
    import shlex
    import subprocess

    from normbench.cli.main import build_parser

    script = repo / "scripts" / "gpu-check.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text().replace("\\\n", " ")
    commands = [
        line.split("normbench.cli", 1)[1].split("|")[0]
        for line in text.splitlines()
        if "normbench.cli" in line
    ]
    assert len(commands) == 3
    for command in commands:
        build_parser().parse_args(shlex.split(command.replace("$out", "out")))
