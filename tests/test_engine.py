"""The training engines: the fast step computes the eager step (CPU here; CUDA graphs in the gpu-marked tests),
divergence is still found and recorded, and the batched SVB equals the per-layer one."""

import copy

import pytest
import torch

from normbench.config import run_config, run_specs, validate_config
from normbench.methods import build_method
from normbench.methods.svb import bound_singular_values, bound_singular_values_batched, weight_layers
from normbench.models import build_model
from normbench.runs.folder import read_records, without_timing
from normbench.studies.bench import synthetic_data
from normbench.training.batches import TensorBatches
from normbench.training.engine import (
    EagerStep,
    FastStep,
    bf16_validated,
    build_step,
    engine_config,
    graph_plan,
)
from normbench.training.trainer import train_run

SGD = {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4}


def _pair(model_name, method_name, device="cpu", options=None, optimizer=SGD, precision="fp32"):
    """An eager and a fast step on two identical copies of one model."""
    torch.manual_seed(0)
    model = build_model(model_name, num_classes=10, in_channels=3)
    steps = []
    for engine in ("eager", "fast"):
        m = copy.deepcopy(model)
        meth = build_method(method_name, options)
        if method_name == "procrustes":
            meth.generator.manual_seed(0)
        m.to(device)
        steps.append(
            build_step({"name": engine, "precision": precision}, m, meth, optimizer, deterministic=True)
        )
    return steps


def _batches(n=3, size=16, device="cpu"):
    data = synthetic_data(size * n, size=8)
    b = TensorBatches(data, torch.device(device), size, {"pad": 1, "flip": True})
    return list(b.train_epoch(torch.Generator().manual_seed(0)))


@pytest.mark.parametrize(
    "model_name,method_name,options",
    [
        ("preact_resnet20", "none", None),
        ("preact_resnet20", "ortho_reg", {"ortho_reg": {"coef": 0.1}}),
        ("procresnet22", "procrustes", {"procrustes": {"every": 1}}),
    ],
)
def test_fast_step_equals_eager_step_on_cpu(model_name, method_name, options):
    eager, fast = _pair(model_name, method_name, options=options)
    assert isinstance(eager, EagerStep) and isinstance(fast, FastStep) and not fast.use_graphs
    for s in (eager, fast):
        s.model.train()
        s.start_epoch()
    for x, y in _batches():
        assert eager.step(x, y) and fast.step(x, y)
        for (name, pa), pb in zip(eager.model.named_parameters(), fast.model.parameters(), strict=True):
            torch.testing.assert_close(pa.grad, pb.grad, rtol=0, atol=0, msg=name)
            torch.testing.assert_close(pa, pb, rtol=0, atol=0, msg=name)
    a, b = eager.end_epoch(), fast.end_epoch()
    assert (a.loss_sum, a.wrong, a.seen, a.steps) == (b.loss_sum, b.wrong, b.seen, b.steps)
    assert a.diverged is None and b.diverged is None and a.steps == 3


@pytest.fixture
def run_cfg(tiny_config):
    tiny_config["experiments"]["gap"]["models"] = ["preact_resnet20"]
    tiny_config["experiments"]["gap"]["seeds"] = [3]
    tiny_config["experiments"]["gap"]["epochs"] = 1
    config = validate_config(tiny_config)
    return run_config(config, run_specs(config)[0])


def _train(cfg, path, **engine):
    cfg = copy.deepcopy(cfg)
    cfg["engine"].update(engine)
    train_run(cfg, path, log=lambda m: None)
    return read_records(path / "metrics.jsonl")


@pytest.mark.parametrize("drop_last", [False, True])
def test_train_run_fast_equals_eager(run_cfg, tmp_path, drop_last):
    assert run_cfg["engine"] == engine_config(run_cfg) and run_cfg["engine"]["name"] == "eager"
    a = _train(run_cfg, tmp_path / "eager", drop_last=drop_last)
    b = _train(run_cfg, tmp_path / "fast", name="fast", drop_last=drop_last)
    assert without_timing(a) == without_timing(b)
    steps = a[-1]["steps"]
    assert steps == (1437 // 128 if drop_last else -(-1437 // 128))
    prov = (tmp_path / "fast" / "provenance.json").read_text()
    assert "fast (fallback: no CUDA graphs on cpu)" in prov and '"precision_validated": true' in prov


def test_divergence_found_by_fast_engine(run_cfg, tmp_path):
    run_cfg["optimizer"]["lr"] = 1e6
    run_cfg["arch"] = run_cfg["model"] = "plain20"
    eager = _train(run_cfg, tmp_path / "eager")
    fast = _train(run_cfg, tmp_path / "fast", name="fast", check_every=4)
    assert eager[-1]["kind"] == fast[-1]["kind"] == "diverged"
    assert eager[-1]["iteration"] == fast[-1]["iteration"] and eager[-1]["epoch"] == fast[-1]["epoch"]
    lo, hi = fast[-1].get("window", [fast[-1]["iteration"]] * 2)
    assert lo <= fast[-1]["iteration"] <= hi and hi - lo < 4
    assert "non-finite" in fast[-1]["reason"]


def test_graph_plan_reasons():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert "cpu" in graph_plan(cpu, build_method("none"), "sgd")
    if torch.cuda.is_available():
        assert graph_plan(cuda, build_method("none"), "sgd") is None
        assert "modulation" in graph_plan(cuda, build_method("modulation"), "sgd")
        assert "adagrad" in graph_plan(cuda, build_method("none"), "adagrad")
        assert not build_method("ortho_reg+modulation").graph_safe


def test_bf16_gate(tmp_path):
    cfg = {"model": "m", "arch": "m", "engine": {"precision": "bf16"}}
    assert bf16_validated({"model": "m"}) and not bf16_validated(cfg, tmp_path)
    (tmp_path / "v.json").write_text('{"arch": "m", "passed": true}')
    cfg["engine"]["bf16_validation"] = "v.json"
    assert bf16_validated(cfg, tmp_path)
    (tmp_path / "v.json").write_text('{"arch": "other", "passed": true}')
    assert not bf16_validated(cfg, tmp_path)


def test_bf16_step_runs_on_cpu():
    eager, fast = _pair("preact_resnet20", "none", precision="bf16")
    x, y = _batches(1)[0]
    assert eager.step(x, y) and fast.step(x, y)
    assert abs(eager.end_epoch().loss_sum - fast.end_epoch().loss_sum) < 1e-3


def test_svb_batched_equals_per_layer():
    torch.manual_seed(0)
    model = build_model("preact_resnet20", num_classes=10, in_channels=3)
    weights = [m.weight for _, m in weight_layers(model)]
    batched = bound_singular_values_batched(weights, 1 / 1.5, 1.5)
    for w, b in zip(weights, batched, strict=True):
        torch.testing.assert_close(b, bound_singular_values(w, 1 / 1.5, 1.5), rtol=1e-6, atol=1e-7)


# -- GPU: graph-replayed steps against eager steps (deselected by default; skipped without CUDA) -------------
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize(
    "model_name,method_name,options",
    [("preact_resnet20", "none", None), ("procresnet22", "procrustes", {"procrustes": {"every": 2}})],
)
def test_graph_replay_equals_eager_on_gpu(model_name, method_name, options):
    torch.backends.cudnn.benchmark = False
    eager, fast = _pair(model_name, method_name, "cuda", options)
    assert fast.use_graphs
    batches = _batches(8, 32, "cuda") + _batches(1, 16, "cuda")  # a smaller last batch: a second graph
    for s in (eager, fast):
        s.model.train()
        s.start_epoch()
    for i, (x, y) in enumerate(batches):
        if i == 6:  # a new learning rate re-captures
            eager.set_lr(0.01)
            fast.set_lr(0.01)
        assert eager.step(x, y) and fast.step(x, y)
    a, b = eager.end_epoch(), fast.end_epoch()
    assert fast.captures >= 3 and a.seen == b.seen and a.steps == b.steps
    assert abs(a.loss_sum - b.loss_sum) <= 1e-3 * abs(a.loss_sum)
    for (name, pa), pb in zip(eager.model.named_parameters(), fast.model.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-3, atol=1e-4, msg=name)


@pytest.mark.gpu
@gpu
def test_train_run_fast_on_gpu(run_cfg, tmp_path):
    run_cfg["device"] = "cuda"
    a = _train(run_cfg, tmp_path / "eager")
    b = _train(run_cfg, tmp_path / "fast", name="fast")
    assert "fast+cuda_graphs" in (tmp_path / "fast" / "provenance.json").read_text()
    ea, eb = a[-1], b[-1]
    assert abs(ea["train_loss"] - eb["train_loss"]) < 0.05 and abs(ea["test_error"] - eb["test_error"]) < 5
