"""Known-answer tests of the probes (normbench.probes)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from normbench.methods.base import Method
from normbench.models.preact import PreActResNet
from normbench.probes import (
    PROBES,
    activation_distributions,
    backward_error_moments,
    block_grad_norm_ratios,
    condition_number,
    fig2_network,
    filter_cosines,
    find_blocks,
    from_json_safe,
    hidden_condition_numbers,
    histogram,
    hosvd,
    hosvd_singular_values,
    json_safe,
    pick_spread,
    record_probes,
    representation_condition,
    singular_value_histograms,
    summarize,
    weight_condition_numbers,
    weight_correlation,
    weight_distributions,
    weight_singular_values,
)
from normbench.probes.conditioning import representation_singular_values
from normbench.studies.fig2 import fig2_grid, train_cell


def orthogonal(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).float()


class Scale(nn.Module):
    def __init__(self, s: float) -> None:
        super().__init__()
        self.s = s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.s


class BlockNet(nn.Module):
    """stem -> blocks -> head, with known blocks (the layout of the pre-act models)."""

    def __init__(self, blocks: list[nn.Module], width: int = 8, out_width: int | None = None) -> None:
        super().__init__()
        self.stem = nn.Linear(6, width)
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(out_width or width, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def orth_linear(n: int, seed: int = 0) -> nn.Linear:
    lin = nn.Linear(n, n, bias=False)
    with torch.no_grad():
        lin.weight.copy_(orthogonal(n, seed))
    return lin


def batch(n: int = 16, d: int = 6, classes: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randint(0, classes, (n,), generator=g)


def image_batch(n: int = 4, c: int = 3, hw: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, hw, hw, generator=g), torch.randint(0, 10, (n,), generator=g)


# --------------------------------------------------------------------------------------- gradient ratios


def test_block_ratio_known_answers() -> None:
    torch.manual_seed(0)
    net = BlockNet(
        [nn.Identity(), Scale(1.0), orth_linear(8), Scale(2.0), Scale(0.25), nn.Linear(8, 5)], out_width=5
    )
    recs = block_grad_norm_ratios(net, batch())
    assert [r["name"] for r in recs] == [f"blocks.{i}" for i in range(6)]
    ratios = [r["ratio"] for r in recs]
    # ratio = ||dE/dx_{l+1}|| / ||dE/dx_l||: identity 1, orthogonal 1, scale s -> 1/s
    assert ratios[:5] == pytest.approx([1.0, 1.0, 1.0, 0.5, 4.0], rel=1e-5)
    assert recs[3]["ratio_per_sample_mean"] == pytest.approx(0.5, rel=1e-5)
    assert [r["transition"] for r in recs] == [False] * 5 + [True]
    assert recs[5]["in_shape"] == [8] and recs[5]["out_shape"] == [5]
    assert recs[3]["grad_norm_in"] == pytest.approx(2 * recs[3]["grad_norm_out"], rel=1e-5)


def test_block_ratio_explicit_modules_and_conv() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 4, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(orthogonal(4)[:, :, None, None])
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        conv,
        Scale(3.0),
        nn.Conv2d(4, 8, 3, stride=2, padding=1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),
    )
    recs = block_grad_norm_ratios(net, image_batch(), blocks=[net[1], "2", net[3]])
    assert [r["name"] for r in recs] == ["1", "2", "3"]
    assert recs[0]["ratio"] == pytest.approx(1.0, rel=1e-5)
    assert recs[1]["ratio"] == pytest.approx(1 / 3, rel=1e-5)
    assert [r["transition"] for r in recs] == [False, False, True]
    assert recs[2]["out_shape"] == [8, 4, 4]


def test_find_blocks_preact_transitions() -> None:
    torch.manual_seed(0)
    model = PreActResNet(20)  # m = 2 bottlenecks per stage
    names = [n for n, _ in find_blocks(model)]
    assert names == [f"blocks.{i}" for i in range(6)]
    recs = block_grad_norm_ratios(model, image_batch())
    # three transition blocks: 16 -> 64 channels, then the two stride-2 stage changes (Zaeemzadeh Sec. 4)
    assert [r["transition"] for r in recs] == [True, False, True, False, True, False]
    assert [r["declared_transition"] for r in recs] == [r["transition"] for r in recs]
    assert all(math.isfinite(r["ratio"]) and r["ratio"] > 0 for r in recs)
    with pytest.raises(ValueError, match="blocks"):
        find_blocks(nn.Sequential(nn.Linear(2, 2)))


def test_find_blocks_marker_fallback() -> None:
    layers = pytest.importorskip("normbench.models.layers")
    if not hasattr(layers, "Block"):
        pytest.skip("model code without the Block marker")

    class Inner(layers.Block):
        def __init__(self, c_in: int, c_out: int) -> None:
            super().__init__()
            self.transition = c_in != c_out
            self.lin = nn.Linear(c_in, c_out)
            self.nested = Scale(1.0)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.nested(self.lin(x))

    net = nn.Sequential(nn.Linear(6, 8), Inner(8, 8), Inner(8, 4), nn.Linear(4, 3))
    assert [n for n, _ in find_blocks(net)] == ["1", "2"]
    recs = block_grad_norm_ratios(net, batch())
    assert [(r["transition"], r["declared_transition"]) for r in recs] == [(False, False), (True, True)]


def test_probes_leave_model_untouched() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 10),
    )
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    model.train()
    out = record_probes(
        model, image_batch(), list(PROBES), options={"grad_norm_ratio": {"blocks": ["0", "1"]}}
    )
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert set(out["probes"]) == set(PROBES)


def test_inplace_modification_is_detected() -> None:
    net = BlockNet([Scale(1.0), nn.ReLU(inplace=True)])
    with pytest.raises(RuntimeError, match="in place"):
        block_grad_norm_ratios(net, batch(), blocks=[net.blocks[0]])


def test_backward_error_moments_known_ratios() -> None:
    c1 = nn.Conv2d(4, 4, 1, bias=False)
    c2 = nn.Conv2d(4, 4, 1, bias=False)
    with torch.no_grad():
        c1.weight.copy_(orthogonal(4, 1)[:, :, None, None])
        c2.weight.copy_(orthogonal(4, 2)[:, :, None, None])
    net = nn.Sequential(c1, Scale(3.0), c2, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    for where in ("output", "input"):
        res = backward_error_moments(net, image_batch(c=4), where=where)
        assert res["layers"] == ["0", "2"]
        # delta_1 = 3 * Q2^T delta_2 (same number of entries): q^1 = 9 q^2
        assert res["ratio_consecutive"] == pytest.approx([1 / 9], rel=1e-5)
        assert res["ratio_bottom_to_top"] == pytest.approx(9.0, rel=1e-5)
        assert res["ratio_to_top"] == pytest.approx([9.0, 1.0], rel=1e-5)
    with pytest.raises(ValueError):
        backward_error_moments(net, image_batch(c=4), where="middle")
    torch.manual_seed(0)
    res = backward_error_moments(PreActResNet(11), image_batch())
    assert len(res["q"]) == 10 and not any("shortcut" in n for n in res["layers"])  # main path only


# --------------------------------------------------------------------------------------------- Fig. 2


def polar_centre_tap(net: nn.Module) -> None:
    """Test projection: the middle conv becomes a centre-tap kernel holding the orthogonal polar factor."""
    w = net.block[0].weight
    with torch.no_grad():
        u, _, vh = torch.linalg.svd(w[:, :, 1, 1])
        w.zero_()
        w[:, :, 1, 1] = u @ vh


def test_fig2_network_layout() -> None:
    net = fig2_network(c=5, d=7)
    assert net(torch.randn(2, 3, 8, 8)).shape == (2, 10)
    assert net.block[0].kernel_size == (3, 3)
    assert (net.block[0].in_channels, net.block[0].out_channels) == (5, 7)
    assert net.stem[0].kernel_size == (1, 1) and net.head[0].kernel_size == (1, 1)
    assert net.block[0].grid == 8  # ProjectedConv2d records its grid for the projection


class PolarProjection(Method):
    """A stand-in constraint: the polar factor of the middle layer's centre tap, at attach and after each step."""

    name = "polar"

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def attach(self, model: nn.Module) -> None:
        self.after_step(model, -1)

    def after_step(self, model: nn.Module, step: int) -> None:
        self.calls += 1
        polar_centre_tap(model)


def test_fig2_cell_with_orthogonal_projection() -> None:
    """The Fig. 2 cell trains through the engine step with the method's hooks: attach once, after_step per step."""
    data = [image_batch(seed=s) for s in range(3)]
    probe = image_batch(n=8, seed=9)
    method = PolarProjection()
    lin = train_cell(4, 4, data, probe, method, epochs=2, relu=False)
    assert lin["steps"] == 6 and method.calls == 7 and lin["projected"]
    assert lin["ratio"] == pytest.approx(1.0, abs=1e-5)  # orthogonal conv: norm preserving
    relu = train_cell(4, 4, data, probe, PolarProjection(), epochs=1)
    assert relu["ratio"] >= 1.0 - 1e-6  # ReLU only removes gradient energy on the way down
    free = train_cell(4, 4, data, probe, None, epochs=1, relu=False)
    assert abs(free["ratio"] - 1.0) > 1e-3 and not free["projected"]
    again = train_cell(4, 4, data, probe, None, epochs=1, relu=False)
    assert again["ratio"] == free["ratio"]  # seeded


def test_fig2_cell_is_the_trainers_step():
    """One cell equals the eager engine step run by hand on the same network: same loss, same weights."""
    from normbench.methods import build_method
    from normbench.models.fig2net import fig2_network
    from normbench.training.engine import build_step

    data = [image_batch(seed=s) for s in range(2)]
    probe = image_batch(n=8, seed=9)
    cell = train_cell(3, 5, data, probe, None, epochs=1, seed=4)
    torch.manual_seed(4)
    net = fig2_network(3, 5)
    method = build_method("none")
    step = build_step(
        {"name": "eager"}, net, method, {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4}
    )
    net.train()
    step.start_epoch()
    for x, y in data:
        step.step(x, y)
    stats = step.end_epoch()
    assert cell["train_loss"] == pytest.approx(stats.loss_sum / stats.seen, rel=1e-6)


def test_fig2_cell_stops_at_divergence():
    data = [image_batch(seed=s) for s in range(3)]
    cell = train_cell(4, 4, data, image_batch(n=8, seed=9), None, epochs=3, optimizer={"lr": 1e30})
    assert "diverged" in cell and cell["steps"] <= 3


def test_fig2_grid_means() -> None:
    data = [image_batch(seed=0)]
    grid = fig2_grid([2, 4], [3], data, image_batch(seed=1), runs=2, epochs=0)
    assert len(grid["mean"]) == 2 and len(grid["mean"][0]) == 1
    assert grid["mean"][1][0] == pytest.approx(sum(grid["ratios"][1][0]) / 2)
    assert grid["ratios"][0][0][0] != grid["ratios"][0][0][1]  # different seeds


# -------------------------------------------------------------------------------------------- spectra


def test_weight_singular_values_known() -> None:
    conv = nn.Conv2d(1, 2, 2, bias=False)
    lin = nn.Linear(3, 2, bias=False)
    grouped = nn.Conv2d(4, 6, 3, groups=2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[3.0, 0, 0, 0], [0, 4.0, 0, 0]]).reshape(2, 1, 2, 2))
        lin.weight.copy_(torch.tensor([[5.0, 0, 0], [0, 0, 1.0]]))
    model = nn.Sequential(conv, nn.Flatten(), lin, grouped)
    recs = weight_singular_values(model)
    assert [r["name"] for r in recs] == ["0", "2", "3"]
    assert recs[0]["singular_values"] == pytest.approx([4.0, 3.0])
    assert recs[0]["matrix_shape"] == [2, 4] and recs[0]["kind"] == "conv"
    assert recs[1]["singular_values"] == pytest.approx([5.0, 1.0]) and recs[1]["kind"] == "linear"
    assert recs[2]["matrix_shape"] == [6, 18]  # c_out x (c_in/groups) k k
    ref = np.linalg.svd(grouped.weight.detach().double().reshape(6, -1).numpy(), compute_uv=False)
    assert recs[2]["singular_values"] == pytest.approx(ref.tolist(), rel=1e-9)


def test_histogram_and_sv_histograms() -> None:
    h = histogram([0.0, 0.5, 1.0, float("inf")], bins=2, value_range=(0.0, 1.0), normalize=False)
    assert h["counts"] == [1, 2] and h["edges"] == [0.0, 0.5, 1.0] and h["nonfinite"] == 1
    hn = histogram(torch.rand(100), bins=7)
    assert sum(hn["counts"]) == pytest.approx(1.0)
    torch.manual_seed(0)
    model = PreActResNet(20)
    recs = singular_value_histograms(model, bins=10)
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert [r["name"] for r in recs] == [convs[0], convs[len(convs) // 2], convs[-1]]
    assert all(sum(r["histogram"]["counts"]) == pytest.approx(1.0) for r in recs)
    assert pick_spread(list(range(10)), 2) == [0, 9]


# --------------------------------------------------------------------------------------- conditioning


def test_condition_number_rules() -> None:
    assert condition_number([2.0, 1.0]) == 2.0
    assert condition_number([1.0, 0.0]) == math.inf
    assert condition_number([1.0, 1e-9]) == math.inf  # below sqrt(k) eps_float32
    assert condition_number([1.0, 1e-5]) == pytest.approx(1e5)
    assert condition_number([0.0, 0.0]) == math.inf
    assert math.isnan(condition_number([]))
    assert math.isnan(condition_number([1.0, float("nan")]))


def test_weight_condition_orthogonal_and_singular() -> None:
    lin = orth_linear(8)
    conv1x1 = nn.Conv2d(8, 8, 1, bias=False)
    singular = nn.Conv2d(2, 3, 3, bias=False)
    with torch.no_grad():
        conv1x1.weight.copy_(orthogonal(8, 3)[:, :, None, None] * 0.1)
        singular.weight[1] = singular.weight[0]  # two identical filters: mode-1 rank 2 < 3
    recs = weight_condition_numbers(nn.ModuleList([lin, conv1x1, singular]), include_values=True)
    assert recs[0]["kappa"] == pytest.approx(1.0, abs=1e-5) and recs[0]["mode_kappa"] == pytest.approx([1, 1])
    assert recs[1]["kappa"] == pytest.approx(1.0, abs=1e-5) and len(recs[1]["mode_kappa"]) == 4
    assert recs[2]["mode_kappa"][0] == math.inf and recs[2]["kappa"] == math.inf
    assert [len(s) for s in recs[2]["mode_singular_values"]] == [3, 2, 3, 3]
    assert json_safe(recs[2])["kappa"] == "inf"


def test_hosvd_matches_core_slices() -> None:
    g = torch.Generator().manual_seed(0)
    t = torch.randn(4, 3, 3, 2, generator=g, dtype=torch.float64)
    core, factors = hosvd(t)
    recon = core
    for n, u in enumerate(factors):
        recon = torch.tensordot(recon, u, dims=([n], [1])).movedim(-1, n)
    assert torch.allclose(recon, t, atol=1e-10)
    svs = hosvd_singular_values(t)
    for n, s in enumerate(svs):
        slice_norms = core.movedim(n, 0).reshape(core.shape[n], -1).norm(dim=1)
        assert s == pytest.approx(slice_norms.tolist(), rel=1e-9)  # n-mode singular values
    # all-orthogonality: distinct slices of the core are orthogonal
    s0 = core.reshape(4, -1)
    off = s0 @ s0.T - torch.diag(torch.diagonal(s0 @ s0.T))
    assert off.abs().max() < 1e-9


def test_hidden_condition_known_answers() -> None:
    q = orthogonal(8, 5)
    x = orthogonal(8, 6)  # 8 samples whose batch matrix is orthogonal
    net = nn.Sequential(orth_linear(8, 7), nn.Linear(8, 8, bias=False))
    with torch.no_grad():
        net[1].weight.copy_(torch.ones(8, 8))  # rank 1
    recs = hidden_condition_numbers(net, (x, torch.zeros(8, dtype=torch.long)))
    assert recs[0]["kappa"] == pytest.approx(1.0, abs=1e-5) and recs[0]["rank"] == 8
    assert recs[1]["kappa"] == math.inf and recs[1]["rank"] == 1
    dup = representation_condition(torch.cat([q[:3], q[:1]]))  # a repeated sample
    assert dup["kappa"] == math.inf and dup["rank"] == 3
    # the Gram route agrees with a direct SVD
    h = torch.randn(5, 3, 7, 7)
    ref = np.linalg.svd(h.double().reshape(5, -1).numpy(), compute_uv=False)
    assert representation_singular_values(h) == pytest.approx(ref.tolist(), rel=1e-6)
    out = record_probes(net, x, ["hidden_condition"])
    assert out["probes"]["hidden_condition"][1]["kappa"] == "inf"
    assert from_json_safe(out)["probes"]["hidden_condition"][1]["kappa"] == math.inf


# -------------------------------------------------------------------------------------- distributions


def test_summarize_known() -> None:
    t = torch.arange(101, dtype=torch.float32)
    s = summarize(torch.cat([t, torch.tensor([float("inf"), float("nan")])]), bins=4)
    assert s["numel"] == 103 and s["nonfinite"] == 2
    assert (s["min"], s["max"], s["range"], s["mean"]) == (0.0, 100.0, 100.0, 50.0)
    assert s["std"] == pytest.approx(float(t.double().std(correction=0)))
    qs = dict(zip(s["quantiles"]["q"], s["quantiles"]["values"], strict=True))
    assert qs[0.25] == 25.0 and qs[0.5] == 50.0 and qs[0.999] == pytest.approx(99.9)
    assert sum(s["histogram"]["counts"]) == 101


def test_activation_and_weight_distributions() -> None:
    torch.manual_seed(0)
    model = PreActResNet(11)
    acts = activation_distributions(model, image_batch())
    assert [a["name"] for a in acts] == ["conv1", "fc"]  # first and last weight layer
    assert acts[0]["layer_index"] == 0 and acts[0]["shape"] == [16, 8, 8] and acts[1]["shape"] == [10]
    ws = weight_distributions(model)
    assert [w["name"] for w in ws] == ["conv1", "fc"] and ws[0]["numel"] == 16 * 3 * 9
    ident = nn.Sequential(nn.Linear(4, 4, bias=False))
    with torch.no_grad():
        ident[0].weight.copy_(torch.eye(4))
    x = torch.tensor([[1.0, -2.0, 3.0, 4.0]])
    a = activation_distributions(ident, x, layers=["0"])[0]
    assert (a["min"], a["max"], a["range"]) == (-2.0, 4.0, 6.0)


# ---------------------------------------------------------------------------------------- correlation


def test_weight_correlation_known() -> None:
    v = torch.randn(1, 3, 2, 2)
    same = nn.Conv2d(3, 2, 2, bias=False)
    opposite = nn.Conv2d(3, 2, 2, bias=False)
    ortho = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        same.weight.copy_(torch.cat([v, 2 * v]))
        opposite.weight.copy_(torch.cat([v, -v]))
        ortho.weight.copy_(torch.eye(3))
    r = weight_correlation(nn.ModuleList([same, opposite, ortho]))
    per = {x["name"]: x for x in r["layers"]}
    assert per["0"]["mean"] == pytest.approx(1.0) and per["0"]["pairs"] == 1
    assert per["1"]["mean"] == pytest.approx(-1.0) and per["1"]["mean_abs"] == pytest.approx(1.0)
    assert per["2"]["mean"] == 0.0 and per["2"]["pairs"] == 3 and per["2"]["f_in"] == 3
    assert r["pairs"] == 5 and r["mean"] == pytest.approx(0.0) and r["mean_abs"] == pytest.approx(2 / 5)
    cos, skipped = filter_cosines(torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]]))
    assert skipped == 1 and cos.tolist() == pytest.approx([math.sqrt(0.5)])


# ------------------------------------------------------------------------------------- record_probes


def test_record_probes_json_and_errors() -> None:
    torch.manual_seed(0)
    model = PreActResNet(11)
    out = record_probes(model, image_batch(), list(PROBES))
    text = json.dumps(out, allow_nan=False)
    back = json.loads(text)
    assert [r["transition"] for r in back["probes"]["grad_norm_ratio"]] == [True, True, True]
    assert set(back["seconds"]) == set(PROBES)
    with pytest.raises(ValueError, match="unknown probe"):
        record_probes(model, image_batch(), ["grad_norm_ratio", "nope"])
    assert json_safe({"a": (float("-inf"), float("nan"), 1.5)}) == {"a": ["-inf", "nan", 1.5]}


def test_relu_nonzero_counts_every_relu_call():
    """Xie footnote 3: after BN (train mode, zero-mean outputs) about half the ReLU outputs are non-zero; a
    ReLU fed positive inputs passes everything; a module used twice counts twice; no nn.ReLU: NaN."""
    import math

    from torch import nn

    from normbench.probes.distributions import relu_nonzero

    torch.manual_seed(0)
    relu = nn.ReLU()
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), relu, nn.Conv2d(16, 16, 1), relu)
    x = torch.randn(32, 3, 8, 8)
    net.train()
    out = relu_nonzero(net, (x, torch.zeros(32, dtype=torch.long)))
    assert len(out["calls"]) == 2 and out["numel"] == 2 * 32 * 16 * 8 * 8
    assert 45.0 < out["calls"][0]["percent"] < 55.0  # BN in train mode: each channel zero-mean
    assert out["percent"] == pytest.approx(100.0 * out["nonzero"] / out["numel"])
    assert net.training and not any(p.grad is not None for p in net.parameters())
    positive = relu_nonzero(nn.Sequential(nn.ReLU()), torch.rand(4, 3) + 0.1)
    assert positive["percent"] == 100.0
    assert math.isnan(relu_nonzero(nn.Sequential(nn.Linear(3, 3)), torch.rand(4, 3))["percent"])


def test_bn_gammas_count_the_scales_that_are_not_positive():
    """Jia Sec. 5: one record per affine BN layer with its smallest gamma and how many are <= 0; a model
    without batch norm has none (not a record of zeros)."""
    from torch import nn

    from normbench.probes.distributions import bn_gammas

    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.BatchNorm2d(4, affine=False), nn.ReLU())
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([1.0, -0.5, 0.0, 2.0]))
    (rec,) = bn_gammas(model)
    assert rec["name"] == "1" and rec["min"] == -0.5 and rec["max"] == 2.0 and rec["nonpositive"] == 2
    assert bn_gammas(nn.Sequential(nn.Conv2d(1, 4, 3))) == []


def test_the_gradient_probe_records_procresnets_projected_stem():
    """Zaeemzadeh Fig. 3 plots ProcResNet's stem conv* (3 -> 64 channels) as its first transition block; it
    is not in model.blocks, so the probe adds it first. A ResNet has no projected stem: its blocks only."""
    from normbench.models import build_model
    from normbench.probes.gradients import block_grad_norm_ratios

    batch = (torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,)))
    proc = block_grad_norm_ratios(build_model("procresnet22"), batch)
    assert proc[0]["name"] == "stem" and proc[0]["in_shape"][0] == 3 and proc[0]["transition"]
    assert [b["name"] for b in proc if b["transition"]] == ["stem", "blocks.2", "blocks.4"]
    resnet = block_grad_norm_ratios(build_model("preact_resnet20"), batch)
    assert resnet[0]["name"] == "blocks.0" and len(resnet) == 6
