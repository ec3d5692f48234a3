"""The command line: help, registry and reference listings, and a training run by hand."""

import json
import subprocess
import sys

import yaml

from normbench.cli import build_parser, main


def test_help_lists_every_step():
    text = build_parser().format_help()
    for cmd in ("data", "train", "tables", "figures", "compare", "report", "models", "references"):
        assert cmd in text


def test_console_script_help():
    out = subprocess.run(
        [sys.executable, "-m", "normbench.cli", "train", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "--spec" in out.stdout and "resume" in out.stdout


def test_models_json(capsys):
    assert main(["models", "--json", "--family", "cifar"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_name = {r["name"]: r for r in rows}
    assert {"name", "params", "paper_params"} <= set(rows[0])
    assert by_name["plain20"]["paper_params"] is None
    r164 = by_name["preact_resnet164"]
    assert abs(r164["params"] - r164["paper_params"]) / r164["paper_params"] < 0.01


def test_references_json(capsys):
    assert main(["references", "--json", "--paper", "zaeemzadeh2020"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all({"paper", "value"} <= set(r) for r in rows)


def test_train_by_hand_and_tables(tmp_path, tiny_config, capsys):
    tiny_config["experiments"]["gap"]["epochs"] = 1
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    assert (
        main(["train", "--config", str(path), "--experiment", "gap", "--model", "plain20", "--seed", "0"])
        == 0
    )
    run = tmp_path / "results" / "tiny" / "runs" / "gap" / "plain20" / "none" / "seed0"
    assert (run / "metrics.jsonl").exists() and (run / "checkpoint.pt").exists()
    assert main(["tables", str(tmp_path / "results"), "--out-dir", str(tmp_path / "t")]) == 0
    assert (tmp_path / "t" / "gap.csv").exists()


def test_bad_input_exits_2_with_a_message(tmp_path, tiny_config, capsys):
    tiny_config["experiments"]["gap"]["models"] = ["nope"]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    assert main(["runs", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'nope'" in err and "preact_resnet20" in err
