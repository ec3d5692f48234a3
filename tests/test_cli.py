"""The command line: help, registry and reference listings, and a training run by hand."""

import json
import subprocess
import sys

import pytest
import yaml

from normbench.cli.main import build_parser, main


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


def _python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_cli_import_and_help_do_not_import_torch():
    """``normbench --help`` must not pay for torch (about 2 s of CPU on the development machine)."""
    assert _python("import sys, normbench.cli.main; print('torch' in sys.modules)") == "False"
    code = (
        "import contextlib, io, sys\n"
        "from normbench.cli.main import main\n"
        "for argv in (['--help'], ['train', '--help'], ['models', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "        main(argv)\n"
        "print('torch' in sys.modules)"
    )
    assert _python(code) == "False"


def test_unknown_model_from_a_torch_command_exits_2(capsys):
    # the error classes are looked up lazily (normbench.cli.main._user_errors): one raised after its module was
    # imported inside a command is still reported, not a traceback
    assert main(["bench", "--models", "nope", "--device", "cpu", "--steps", "1"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["fig2_probe", "plain20", "preact_resnet20", "procresnet22", "convnet20"])
def test_meta_counts_equal_real_counts(name):
    from normbench.models import MODELS, build_model, count_params
    from normbench.models.summary import count_depth, meta_counts

    info = MODELS[name]
    for classes in (10, 100):
        real = build_model(name, num_classes=classes)
        params, depth, cls = meta_counts(name, classes)
        assert params == count_params(real)
        assert depth == count_depth(real, info.depth_rule)
        assert cls == f"{type(real).__module__}.{type(real).__qualname__}"


def test_meta_building_leaves_initialisers_in_place():
    import torch

    from normbench.models.summary import no_init

    before = torch.nn.init.kaiming_normal_
    with no_init():
        assert torch.nn.init.kaiming_normal_ is not before
    assert torch.nn.init.kaiming_normal_ is before
    w = torch.nn.init.kaiming_normal_(torch.empty(4, 4))
    assert w.abs().sum() > 0  # real initialisation again
