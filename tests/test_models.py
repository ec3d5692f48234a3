"""The model registry: every network of the four papers, built, run, counted and checked against the papers.

Default run: forward/backward of every CIFAR-style network on tiny batches (16x16, 1 channel: the smoke
pipeline's digits; 28x28 for the MNIST networks; 8x8 forward), parameter counts and depths of all networks
(counted on the meta device, so the 1000-layer and ImageNet ones cost nothing), the Plain networks' lack of
any skip path, ProcResNet's projected layers, and the docs table. ``-m slow``: forward/backward of the
networks tagged ``large`` (1000-layer, WRN-28-16, ImageNet).
"""

from __future__ import annotations

import copy
import functools
import inspect
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from normbench.models import MODELS, build_model, count_params, get_model_info
from normbench.models.layers import Block, ProjectedConv2d
from normbench.models.procresnet import ProcResNet
from normbench.models.summary import (
    TABLE_BEGIN,
    TABLE_END,
    markdown_table,
    params_tolerance,
    summary_row,
)

PAPERS = {"zaeemzadeh2020", "jia2017", "oyedotun2020", "xie2017"}
DOCS = Path(__file__).resolve().parents[1] / "docs" / "models.md"

# Every network the issue lists (names per the scheme in normbench.models.zoo).
REQUIRED = [
    *(f"preact_resnet{d}" for d in (20, 83, 164, 1001)),
    *(f"plain{d}" for d in (20, 83, 164)),
    "preact_resnet164_erase",
    "preact_resnet1001_erase",
    *(f"procresnet{d}" for d in (22, 85, 166, 274, 1003)),
    *(f"procresnet{d}_erase" for d in (166, 274, 1003)),
    "resnext164",
    "preact_resnext164",
    *(f"convnet{d}" for d in (20, 38, 44, 110, 164)),
    *(f"resnet{d}" for d in (44, 110, 164)),
    "preact_resnet68",
    "wrn28_10",
    "wrn28_16",
    "imagenet_resnet101",
    "imagenet_plain101",
    "imagenet_resnext101",
    "imagenet_resnet34_xie",
    "imagenet_plain34_xie",
    "imagenet_resnet101_xie",
    "imagenet_inception_resnet_v2",
]

ALL = list(MODELS)
FAST = [n for n, i in MODELS.items() if "large" not in i.tags]
LARGE = [n for n, i in MODELS.items() if "large" in i.tags]
COUNTED = [n for n, i in MODELS.items() if i.paper_params is not None]
PLAIN = [n for n, i in MODELS.items() if "plain" in i.tags]
MNIST = [n for n, i in MODELS.items() if "mnist" in i.tags]
PROC = [n for n, i in MODELS.items() if "procrustes" in i.tags]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one intra-op thread is faster than two, and fairer on a shared 2-core runner."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@functools.cache
def row(name: str) -> dict[str, Any]:
    return summary_row(get_model_info(name))


def twin(name: str) -> str | None:
    """The residual network a plain one is made from, when the registry has it."""
    if name.startswith("plain"):
        cand = name.replace("plain", "preact_resnet", 1)
    else:
        cand = name.replace("plain", "resnet").replace("convnet", "resnet")
    return cand if cand in MODELS and cand != name else None


def forward_backward(name: str, channels: int, size: int, batch: int = 2, classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(name, num_classes=classes, in_channels=channels)
    model.train()
    x = torch.randn(batch, channels, size, size)
    out = model(x)
    assert out.shape == (batch, classes)
    assert torch.isfinite(out).all()
    nn.functional.cross_entropy(out, torch.arange(batch) % classes).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    return model


def sample_blocks(blocks: list[nn.Module], k: int = 6) -> list[int]:
    """Indices of every transition block and of up to ``k`` others, evenly spread."""
    trans = [i for i, b in enumerate(blocks) if b.transition]
    rest = [i for i, b in enumerate(blocks) if not b.transition]
    step = max(1, len(rest) // k)
    return sorted(trans + rest[::step][:k])


# ------------------------------------------------------------------------------------------------ metadata


def test_every_required_network_is_registered() -> None:
    missing = sorted(set(REQUIRED) - set(MODELS))
    assert not missing, f"not in the registry: {missing}"


def test_legacy_names_used_by_the_pipeline_exist() -> None:
    for name in ("preact_resnet20", "plain20"):
        assert MODELS[name].builder(num_classes=10, in_channels=1) is not None


@pytest.mark.parametrize("name", ALL)
def test_metadata(name: str) -> None:
    info = MODELS[name]
    assert info.name == name == name.lower() and " " not in name
    assert info.paper in PAPERS
    assert info.source and info.description and info.depth > 0
    assert info.family in {"cifar", "imagenet"}
    assert (info.family == "imagenet") == name.startswith("imagenet_") == ("imagenet" in info.tags)
    assert info.paper_classes == (1000 if info.family == "imagenet" else 10)
    assert ("plain" in info.tags) != ("residual" in info.tags)
    if info.paper_params is not None:
        assert info.paper_params_text, "state the figure as printed"
    if info.params_deviation:
        assert info.params_note


@pytest.mark.parametrize("name", ALL)
def test_layout_is_documented(name: str) -> None:
    module_name, _, qualname = row(name)["class"].rpartition(".")
    module = sys.modules[module_name]
    assert inspect.getdoc(getattr(module, qualname)), f"{qualname} has no docstring"
    assert "layout" in (module.__doc__ or "").lower(), f"{module_name} does not state the layout"


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(KeyError, match="procresnet166"):
        build_model("procresnet165")


# ------------------------------------------------------------------------------------- forward / backward


@pytest.mark.parametrize("name", FAST)
def test_forward_backward(name: str) -> None:
    """The smoke pipeline's input (1-channel 16x16 digits), then the smallest input CIFAR-style nets take."""
    model = forward_backward(name, channels=1, size=16).eval()
    if MODELS[name].family == "cifar":
        with torch.no_grad():
            assert model(torch.randn(1, 1, 8, 8)).shape == (1, 10)


@pytest.mark.parametrize("name", MNIST)
def test_mnist_input(name: str) -> None:
    """Oyedotun et al. train their CIFAR-style networks on MNIST (1 channel, 28x28)."""
    forward_backward(name, channels=1, size=28)


@pytest.mark.slow
@pytest.mark.parametrize("name", LARGE)
def test_forward_backward_large(name: str) -> None:
    info = MODELS[name]
    if info.family == "imagenet":
        size = 75 if "inception" in name else 64  # Inception-ResNet-v2's stem needs 75 px
        forward_backward(name, channels=3, size=size, classes=1000)
    else:
        forward_backward(name, channels=3, size=16)


# ----------------------------------------------------------------------------------------- paper numbers


@pytest.mark.parametrize("name", ALL)
def test_depth_as_the_paper_counts(name: str) -> None:
    assert row(name)["depth_counted"] == MODELS[name].depth


@pytest.mark.parametrize("name", COUNTED)
def test_params_against_paper(name: str) -> None:
    """Within max(half a unit of the printed figure, 1%); documented deviations must really deviate."""
    info, r = MODELS[name], row(name)
    diff = abs(r["params_paper_classes"] - info.paper_params)
    tol = params_tolerance(info)
    if info.params_deviation:
        assert diff > tol, f"{name} matches the paper ({r['delta_pct']:+.2f}%): drop params_deviation"
    else:
        assert diff <= tol, f"{name}: {r['params_paper_classes']} vs {info.paper_params_text} (tol {tol})"


def test_tolerance_rule() -> None:
    assert params_tolerance(MODELS["preact_resnext164"]) == 50_000  # "2.5M": rounds to it
    assert params_tolerance(MODELS["preact_resnet164"]) == 17_100  # "1.71M": 1%


@pytest.mark.parametrize(
    "name, params",
    [
        ("preact_resnet164", 1_703_258),  # He et al. 2016 pre-act ResNet-164
        ("preact_resnet1001", 10_327_706),
        ("wrn28_10", 36_479_194),  # Zagoruyko & Komodakis' reference implementation
        ("imagenet_resnet101", 44_549_160),  # torchvision resnet101
        ("imagenet_resnext101", 44_177_704),  # torchvision ResNet(Bottleneck, groups=32, width_per_group=4)
        ("imagenet_inception_resnet_v2", 55_843_464),  # TF-slim / timm inception_resnet_v2
    ],
)
def test_params_against_reference_implementations(name: str, params: int) -> None:
    assert row(name)["params_paper_classes"] == params


def test_count_params_ignores_buffers() -> None:
    model = build_model("plain20")
    n_buffers = sum(b.numel() for b in model.buffers())
    assert n_buffers > 0
    assert count_params(model) == sum(p.numel() for p in model.parameters())


def test_docs_table_is_current() -> None:
    text = DOCS.read_text()
    assert TABLE_BEGIN in text and TABLE_END in text
    current = text[text.index(TABLE_BEGIN) : text.index(TABLE_END) + len(TABLE_END)]
    expected = markdown_table([row(n) for n in MODELS])
    assert current == expected, (
        "docs/models.md is stale: python -m normbench.models.summary --write docs/models.md"
    )


# ---------------------------------------------------------------------------------------- skip structure


def block_inputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The input of every block of ``model.blocks`` on one forward pass."""
    seen: list[torch.Tensor] = []
    hooks = [
        b.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach())) for b in model.blocks
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return seen


def zeroed_jacobian_vp(block: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(v, v^T dy/dx) for the block with every parameter set to zero."""
    blk = copy.deepcopy(block).eval()
    with torch.no_grad():
        for p in blk.parameters():
            p.zero_()
    x = x.clone().requires_grad_(True)
    y = blk(x)
    v = torch.randn_like(y)
    (g,) = torch.autograd.grad(y, x, v, allow_unused=True)
    return v, torch.zeros_like(x) if g is None else g


def _maybe_slow(names: list[str]) -> list[Any]:
    return [pytest.param(n, marks=pytest.mark.slow) if "large" in MODELS[n].tags else n for n in names]


def _probe_input(name: str) -> torch.Tensor:
    if MODELS[name].family == "imagenet":
        return torch.randn(2, 3, 64, 64)
    return torch.randn(2, 3, 16, 16)


@pytest.mark.parametrize("name", _maybe_slow(PLAIN))
def test_plain_blocks_have_no_skip_path(name: str) -> None:
    """dy/dx of a Plain block is J_F(weights) alone: with its weights zeroed it vanishes (no identity)."""
    torch.manual_seed(0)
    model = build_model(name, num_classes=MODELS[name].paper_classes)
    blocks = list(model.blocks)
    assert blocks and all(isinstance(b, Block) and not b.skip for b in blocks)
    assert not any(isinstance(m, Block) and m.skip for m in model.modules())
    inputs = block_inputs(model, _probe_input(name))
    for i in sample_blocks(blocks):
        _, g = zeroed_jacobian_vp(blocks[i], inputs[i])
        assert torch.count_nonzero(g) == 0, f"block {i}"


@pytest.mark.parametrize(
    "name", [n for n in FAST if "residual" in MODELS[n].tags and MODELS[n].family == "cifar"]
)
def test_residual_identity_blocks_keep_the_identity(name: str) -> None:
    """The other side of the Plain test: a residual block with zeroed weights still passes the gradient on;
    for identity-skip pre-activation blocks exactly (dy/dx = I)."""
    torch.manual_seed(0)
    model = build_model(name, in_channels=1)
    blocks = list(model.blocks)
    inputs = block_inputs(model, torch.randn(2, 1, 16, 16))
    checked = 0
    for i in sample_blocks(blocks):
        block, x = blocks[i], inputs[i]
        if block.transition:
            continue
        v, g = zeroed_jacobian_vp(block, x)
        if name.startswith(("preact_", "procresnet", "wrn")):
            torch.testing.assert_close(g, v, rtol=0, atol=0)
        else:  # post-activation: the ReLU after the addition gates the identity
            assert torch.equal(g, v * (x > 0))
        checked += 1
    assert checked > 0


@pytest.mark.parametrize("name", _maybe_slow([n for n in PLAIN if twin(n)]))
def test_plain_network_is_cut_by_one_zeroed_block(name: str) -> None:
    """Zeroing one middle block's weights disconnects a Plain network's output from its input; the residual
    twin stays connected through its skips."""
    for net, connected in ((name, False), (twin(name), True)):
        torch.manual_seed(0)
        model = build_model(net, num_classes=MODELS[name].paper_classes)
        middle = model.blocks[len(model.blocks) // 2]
        with torch.no_grad():
            for p in middle.parameters():
                p.zero_()
        x = _probe_input(name).requires_grad_(True)
        model(x).sum().backward()
        assert (torch.count_nonzero(x.grad) > 0) == connected, net


# ------------------------------------------------------------------------------------------------ ProcResNet


@pytest.mark.parametrize("name", [n for n in PROC if "large" not in MODELS[n].tags])
def test_procresnet_projected_layers(name: str) -> None:
    model = build_model(name, in_channels=3)
    m = (MODELS[name].depth - 4) // 9
    named = {n: mod for n, mod in model.named_modules() if isinstance(mod, ProjectedConv2d)}
    assert list(named) == ["stem", f"blocks.{m}.proj", f"blocks.{2 * m}.proj"]
    stem, t1, t2 = named.values()
    assert (stem.in_channels, stem.out_channels, stem.kernel_size, stem.stride) == (3, 64, (3, 3), (1, 1))
    assert (t1.in_channels, t1.out_channels, t1.kernel_size, t1.stride) == (64, 128, (1, 1), (2, 2))
    assert (t2.in_channels, t2.out_channels, t2.kernel_size, t2.stride) == (128, 256, (1, 1), (2, 2))
    assert model.projected_convs() == [stem, t1, t2]
    # every skip in ProcResNet is an identity: no projection shortcut left
    assert not any("shortcut" in n.split(".") for n, _ in model.named_modules() if n)
    assert [b.transition for b in model.blocks].count(True) == 2
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    assert [c.grid for c in (stem, t1, t2)] == [32, 32, 16]  # input grid sizes (see ProjectedConv2d)


def test_procresnet_adds_two_layers_to_its_resnet() -> None:
    for proc, res in (("procresnet166", "preact_resnet164"), ("procresnet1003", "preact_resnet1001")):
        assert MODELS[proc].depth == MODELS[res].depth + 2
        extra = row(proc)["params_10"] - row(res)["params_10"]
        assert 0 < extra < 0.01 * row(res)["params_10"]  # "a slight increase ... (under 1 percent)"


def test_erase_relu_changes_function_not_parameters() -> None:
    torch.manual_seed(0)
    a = ProcResNet(22, erase_relu=True).eval()  # the registered _erase depths are 166/274/1003; same code
    b = ProcResNet(22).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(a(x), b(x))
