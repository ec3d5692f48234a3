"""Method registry and the trainer's use of it: names, options, checkpoint constraints, resumption."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import normbench.training.trainer as train_mod
from normbench.config import run_config, run_specs, validate_config
from normbench.methods import METHODS, build_method
from normbench.methods.procrustes import procrustes_gain
from normbench.models.layers import ProjectedConv2d
from normbench.training.trainer import train_run

NAMES = ["procrustes", "svb", "bbn", "ortho_init", "ortho_reg", "modulation"]


def test_every_method_is_registered_with_defaults():
    for name in NAMES:
        assert name in METHODS
        method = build_method(name)
        assert method.name == name and method.state_dict() is not None


def test_unknown_option_is_an_error():
    with pytest.raises(TypeError):
        build_method("svb", {"svb": {"epsilon": 0.5}})


def test_method_names_are_valid_in_a_config(tiny_config):
    tiny_config["experiments"]["gap"]["methods"] = [
        "procrustes",
        "svb+bbn",
        "ortho_init+ortho_reg+modulation",
    ]
    tiny_config["experiments"]["gap"]["method_options"] = {
        "svb": {"eps": 0.5},
        "modulation": {"n_iters": 100},
    }
    config = validate_config(tiny_config)
    specs = [s for s in run_specs(config) if s.method == "svb+bbn"]
    assert run_config(config, specs[0])["method_options"] == {"svb": {"eps": 0.5}}


class DigitsProcNet(nn.Module):
    """A small ProcResNet-like net for the 8x8 one-channel digits: projected 3x3 stem and 1x1 transition."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.stem = ProjectedConv2d(in_channels, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.conv = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.trans = ProjectedConv2d(8, 16, 1, stride=2, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.conv(torch.relu(self.bn(x)))
        x = torch.relu(self.bn2(self.trans(x)))
        return self.fc(x.mean((2, 3)))


@pytest.fixture
def proc_run(tiny_config, monkeypatch):
    monkeypatch.setattr(
        train_mod,
        "build_model",
        lambda name, num_classes, in_channels: DigitsProcNet(num_classes, in_channels),
    )
    exp = tiny_config["experiments"]["gap"]
    exp.update(
        models=["preact_resnet20"],
        seeds=[0],
        epochs=2,
        batch_size=256,
        methods=["procrustes", "svb+bbn"],
        method_options={"procrustes": {"probability": 0.5}, "svb": {"eps": 0.3}, "bbn": {"eps": 0.5}},
    )
    config = validate_config(tiny_config)
    return {s.method: run_config(config, s) for s in run_specs(config)}


def test_checkpoint_carries_procrustes_constraints(proc_run, tmp_path):
    cfg = proc_run["procrustes"]
    train_run(cfg, tmp_path / "p", log=lambda m: None)
    ckpt = torch.load(tmp_path / "p" / "checkpoint.pt", weights_only=False)
    recs = {r["param"]: r for r in ckpt["constraints"]}
    assert set(recs) == {"stem.weight", "trans.weight"} and set(recs) <= set(ckpt["model"])
    trans = recs["trans.weight"]
    assert trans["kind"] == "procrustes" and trans["grid"] == 8 and trans["satisfied"]
    assert trans["gain"] == pytest.approx(procrustes_gain(16, 8))
    w = ckpt["model"]["trans.weight"].double().numpy()[:, :, 0, 0]
    np.testing.assert_allclose(np.linalg.svd(w, compute_uv=False), trans["gain"], rtol=1e-5)
    assert recs["stem.weight"]["kernel"] == [3, 3] and recs["stem.weight"]["grid"] == 8


def test_checkpoint_carries_svb_and_bbn_bounds(proc_run, tmp_path):
    train_run(proc_run["svb+bbn"], tmp_path / "s", log=lambda m: None)
    ckpt = torch.load(tmp_path / "s" / "checkpoint.pt", weights_only=False)
    kinds = {r["kind"] for r in ckpt["constraints"]}
    assert kinds == {"svb", "bbn"}
    for r in ckpt["constraints"]:
        w = ckpt["model"][r["param"]].double().numpy()
        lo, hi = r["bounds"]
        if r["kind"] == "svb":
            sv = np.linalg.svd(w.reshape(w.shape[0], -1), compute_uv=False)
            assert lo * (1 - 1e-5) <= sv.min() and sv.max() <= hi * (1 + 1e-5)
        else:
            bn = r["param"].rsplit(".", 1)[0]
            ratio = w / np.sqrt(ckpt["model"][f"{bn}.running_var"].double().numpy() + 1e-5)
            ratio /= ratio.mean()
            assert lo * (1 - 1e-5) <= ratio.min() and ratio.max() <= hi * (1 + 1e-5)


def test_resumed_procrustes_run_is_identical(proc_run, tmp_path):
    """The probability-p schedule draws from the method's own generator, saved with the resume state."""
    cfg = proc_run["procrustes"]
    train_run(cfg, tmp_path / "whole", log=lambda m: None)

    def interrupt(msg):
        if "epoch 2/" in msg:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(cfg, tmp_path / "cut", log=interrupt)
    assert (tmp_path / "cut" / "resume.pt").exists()
    train_run(cfg, tmp_path / "cut", log=lambda m: None)
    a = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=0, atol=0)
    assert a["constraints"] == b["constraints"]
