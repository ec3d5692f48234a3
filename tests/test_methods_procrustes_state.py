"""Procrustes (issue 16, item 4): projection options, the Newton-Schulz fallback, the gain rule and the recorded
state of the constraint (operator singular values over the gain, circular and zero-padded).

References are independent of normbench's FFT/SVD code: NumPy FFTs and SVDs, a dense zero-padded operator
built column by column, and a NumPy transcription of the official ``regularize_conv`` maths.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from normbench.methods.procrustes import (
    ProcrustesProjection,
    alternate_projection,
    conjugated_reconstruction,
    official_projection,
    operator_state,
    polar_newton_schulz,
    polar_svd,
    procrustes_gain,
    project_kernel,
    relu_after,
    zero_padded_extremes,
)
from normbench.models.fig2net import fig2_network
from normbench.models.layers import ProjectedConv2d


def random_kernel(c_out: int, c_in: int, k: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(c_out, c_in, k, k, dtype=torch.float64, generator=g) / math.sqrt(c_in * k * k)


def np_circular_sv(w: torch.Tensor, n: int) -> np.ndarray:
    """Singular values of the circular operator: FFT of the zero-padded kernel, SVD per frequency."""
    k = w.detach().double().numpy()
    padded = np.zeros(k.shape[:2] + (n, n))
    padded[:, :, : k.shape[2], : k.shape[3]] = k
    return np.linalg.svd(np.fft.fft2(padded, axes=(2, 3)).transpose(2, 3, 0, 1), compute_uv=False)


def np_zero_padded_sv(w: torch.Tensor, n: int, pad: int) -> np.ndarray:
    """Singular values of the dense zero-padded convolution matrix (one column per input pixel and channel)."""
    k = w.detach().double().numpy()
    c_out, c_in, kh, kw = k.shape
    m = n + 2 * pad - kh + 1
    cols = []
    for j in range(c_in):
        for a in range(n):
            for b in range(n):
                x = np.zeros((c_in, n + 2 * pad, n + 2 * pad))
                x[j, a + pad, b + pad] = 1.0
                y = np.zeros((c_out, m, m))
                for p in range(m):
                    for q in range(m):
                        y[:, p, q] = np.einsum("oikl,ikl->o", k, x[:, p : p + kh, q : q + kw])
                cols.append(y.ravel())
    sv = np.linalg.svd(np.stack(cols, 1), compute_uv=False)
    return sv[: min(c_in * n * n, c_out * m * m)]


# ---- the official code's maths, transcribed with NumPy ---------------------------------------------------


def np_official(kernel: np.ndarray, n: int, gain: float, steps: int = 10) -> np.ndarray:
    """zaeemzadeh/ProcResNet_PyTorch ``regularize_conv`` + ``batch_sqrtm`` (reg 1), step by step, in float32.

    Kernel ``(c_out, c_in, kh, kw)`` -> axes ``(kw, kh, c_in, c_out)``; 2-D FFT of size ``n x n`` over the first
    two axes; per frequency the ``c_in x c_out`` block ``R + iI`` becomes ``E = [[R, I], [-I, R]]``;
    ``S = E^T E`` is scaled by ``r = ||S||_F`` if that exceeds 1; 10 coupled steps
    ``T = (3I - ZY)/2, Y <- YT, Z <- TZ``; ``Q = g E Z / sqrt(r)``; ``A' = Q[:c_in, :c_out] - i Q[:c_in, c_out:]``;
    inverse FFT, real part, the first ``kw x kh`` taps, axes back.
    """
    tf = np.transpose(kernel.astype(np.float32), (3, 2, 1, 0))
    spec = np.fft.fft2(tf, s=(n, n), axes=(0, 1)).astype(np.complex64)
    c_in, c_out = tf.shape[2], tf.shape[3]
    out = np.zeros((n, n, c_in, c_out), dtype=np.complex64)
    for u in range(n):
        for v in range(n):
            re, im = spec[u, v].real, spec[u, v].imag
            e = np.block([[re, im], [-im, re]]).astype(np.float32)
            s = e.T @ e
            r = max(np.float32(np.linalg.norm(s)), np.float32(1.0))
            y, z = s / r, np.eye(2 * c_out, dtype=np.float32)
            eye = np.eye(2 * c_out, dtype=np.float32)
            for _ in range(steps):
                t = np.float32(0.5) * (np.float32(3.0) * eye - z @ y)
                y, z = y @ t, t @ z
            q = (e @ (z / np.sqrt(r))) * np.float32(gain)
            out[u, v] = q[:c_in, :c_out] - 1j * q[:c_in, c_out:]
    kern = np.fft.ifft2(out, axes=(0, 1)).real[: tf.shape[0], : tf.shape[1]]
    return np.transpose(kern, (3, 2, 1, 0))


@pytest.mark.parametrize("c_out,c_in,k,n", [(16, 3, 3, 8), (8, 8, 3, 6), (4, 10, 3, 5), (16, 8, 1, 4)])
def test_official_projection_matches_the_transcription(c_out, c_in, k, n):
    w = random_kernel(c_out, c_in, k, seed=c_out + c_in + k).float()
    g = procrustes_gain(c_out, c_in, "ratio")
    ours = official_projection(w, n, g).double().numpy()
    ref = np_official(w.numpy(), n, g)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-5 * np.abs(ref).max())


@pytest.mark.parametrize("c_out,c_in", [(12, 3), (4, 10)])
def test_official_projection_is_exact_for_1x1_and_reflected_for_3x3(c_out, c_in):
    """1x1: the official arithmetic equals the correct projection up to Newton-Schulz rounding. 3x3 (its
    iteration converged on these kernels): the conjugated reconstruction, i.e. the correctly projected kernel
    reflected through the origin, truncated to 3x3."""
    w1 = random_kernel(c_out, c_in, 1, seed=1).float()
    g = procrustes_gain(c_out, c_in, "ratio")
    exact = project_kernel(w1.double(), None, g, "svd").float()
    torch.testing.assert_close(official_projection(w1, 4, g), exact, rtol=0, atol=1e-4)
    w3 = random_kernel(c_out, c_in, 3, seed=2)
    reflected = conjugated_reconstruction(w3, 8, g)[..., :3, :3].float()
    got = official_projection(w3.float(), 8, g)
    torch.testing.assert_close(got, reflected, rtol=0, atol=1e-4 * reflected.abs().max().item())
    correct = project_kernel(w3, 8, g, "svd")
    assert np.abs(np_circular_sv(got, 8) / g - 1).max() > np.abs(np_circular_sv(correct, 8) / g - 1).max()


# ---- alternate ---------------------------------------------------------------------------------------------


def test_alternate_reaches_its_tolerance_on_a_stem_like_layer():
    """3 -> 24 3x3 on an 8 grid: alternating projection reaches 1e-5, the reached residual is the true one."""
    w = random_kernel(24, 3, 3, seed=7)
    g = procrustes_gain(24, 3)
    out, residual, passes = alternate_projection(w, 8, g, tol=1e-5, max_passes=500)
    assert out.shape == w.shape and 1 < passes < 500 and residual <= 1e-5
    assert np.abs(np_circular_sv(out, 8) / g - 1).max() == pytest.approx(residual, rel=1e-6, abs=1e-12)


def test_alternate_stops_at_its_cap_and_reports_the_residual():
    """A square 3x3 layer stalls: the cap stops it, and the residual it reports is the kernel's."""
    w = random_kernel(8, 8, 3, seed=3)
    out, residual, passes = alternate_projection(w, 8, 1.0, tol=1e-8, max_passes=20)
    assert passes == 20 and residual > 1e-8
    assert np.abs(np_circular_sv(out, 8) - 1).max() == pytest.approx(residual, rel=1e-6)


class Stem(nn.Module):
    """A ProcResNet-like stem: 3 -> 16 3x3 zero-padded ProjectedConv2d, then a plain layer (no ReLU after it)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = ProjectedConv2d(3, 16, 3, padding=1, bias=False)
        self.trans = ProjectedConv2d(16, 32, 1, stride=2, bias=False)
        self.fc = nn.Linear(32, 4)

    def forward(self, x):
        return self.fc(self.trans(torch.relu(self.stem(x))).mean((2, 3)))


def test_method_alternate_option_records_the_reached_residual():
    torch.manual_seed(0)
    model = Stem()
    model(torch.randn(2, 3, 8, 8))
    method = ProcrustesProjection(
        projection="alternate", alternate_tol=1e-4, alternate_iterations=400, every=1
    )
    method.attach(model)
    method.project(model)
    residual, passes = method.residuals["stem"]
    assert residual <= 1e-4 and 0 < passes < 400
    g = method.gain_of(model.stem)
    assert np.abs(np_circular_sv(model.stem.weight, 8) / g - 1).max() <= 2e-4  # float32 weights
    assert method.layer_state(model, "stem", model.stem)["alternate_residual"] == residual


def test_method_official_option_applies_the_official_arithmetic():
    torch.manual_seed(1)
    model = Stem()
    model(torch.randn(2, 3, 8, 8))
    before = model.stem.weight.detach().clone()
    method = ProcrustesProjection(projection="official", every=1)
    method.attach(model)
    method.project(model)
    g = procrustes_gain(16, 3)
    ref = np_official(before.numpy(), 8, g)
    np.testing.assert_allclose(model.stem.weight.detach().numpy(), ref, atol=2e-5 * np.abs(ref).max())
    records = {r["param"]: r for r in method.finalize(model)}
    assert records["stem.weight"]["projection"] == "official"
    torch.testing.assert_close(model.stem.weight.detach(), torch.from_numpy(ref))  # finalize adds no pass


# ---- Newton-Schulz fallback -----------------------------------------------------------------------------


def test_newton_schulz_falls_back_to_svd_when_not_converged():
    """A block with condition number 1e4 is far from converged after 10 steps; the check redoes it by SVD,
    and a well-conditioned block of the same batch keeps its Newton-Schulz result."""
    g = torch.Generator().manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(12, 4, dtype=torch.float64, generator=g))
    v, _ = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64, generator=g))
    bad = u @ torch.diag(torch.tensor([1.0, 0.5, 1e-2, 1e-4], dtype=torch.float64)) @ v.T
    good = torch.randn(12, 4, dtype=torch.float64, generator=g)
    batch = torch.stack([bad, good])
    raw = polar_newton_schulz(batch, 10, tol=None)
    assert torch.linalg.svdvals(raw[0]).min() < 0.5  # eq. (9) as written: not converged
    checked = polar_newton_schulz(batch, 10)
    torch.testing.assert_close(checked[0], polar_svd(bad), rtol=0, atol=1e-12)
    torch.testing.assert_close(checked[1], raw[1], rtol=0, atol=0)
    torch.testing.assert_close(checked[1], polar_svd(good), rtol=0, atol=1e-8)
    wide = polar_newton_schulz(bad.T, 10)  # a wide matrix, and no batch dimension
    torch.testing.assert_close(wide, polar_svd(bad.T), rtol=0, atol=1e-12)


# ---- gain rule ------------------------------------------------------------------------------------------


def test_relu_gain_only_on_layers_followed_by_a_relu():
    """Fig. 2 network: the 1x1 stem and the 3x3 Conv-ReLU get sqrt(2), the 1x1 head (no ReLU) gets 1."""
    net = fig2_network(4, 8, num_classes=10)
    method = ProcrustesProjection(gain_factor=math.sqrt(2))
    method.attach(net)
    assert method.relu == {"stem.0": True, "blocks.0.0": True, "head.0": False}
    gains = {n: method._gain(net, n, m) for n, m in method.layers(net)}
    assert gains["blocks.0.0"] == pytest.approx(math.sqrt(2 * 8 / 4))
    assert gains["head.0"] == pytest.approx(procrustes_gain(10, 8))
    flat = fig2_network(4, 8, relu=False)
    method = ProcrustesProjection(gain_factor=math.sqrt(2))
    method.attach(flat)
    assert not any(method.relu.values())
    model = Stem()  # functional relu after the stem; the transition feeds a mean
    assert relu_after(model, ["stem", "trans"]) == {"stem": True, "trans": False}


def test_relu_rule_falls_back_to_the_sequential_structure():
    class Untraceable(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Sequential(ProjectedConv2d(3, 4, 1, bias=False), nn.ReLU())
            self.b = nn.Sequential(ProjectedConv2d(4, 4, 1, bias=False), nn.Identity())

        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
                return self.b(self.a(x))
            return self.a(x)

    assert relu_after(Untraceable(), ["a.0", "b.0"]) == {"a.0": True, "b.0": False}


# ---- the recorded state ------------------------------------------------------------------------------------


def test_zero_padded_extremes_match_the_dense_operator():
    w = random_kernel(6, 2, 3, seed=4)
    sv = np_zero_padded_sv(w, 5, 1)
    assert zero_padded_extremes(w, 5, (1, 1)) == pytest.approx((sv.min(), sv.max()), rel=1e-9)
    lanczos = zero_padded_extremes(w, 5, (1, 1), steps=200, dense_limit=0)  # 50 dims: the Krylov space fills
    assert lanczos == pytest.approx((sv.min(), sv.max()), rel=1e-7)
    narrow = random_kernel(2, 5, 3, seed=5)
    sv = np_zero_padded_sv(narrow, 4, 0)
    assert zero_padded_extremes(narrow, 4, (0, 0)) == pytest.approx((sv.min(), sv.max()), rel=1e-9)


def test_operator_state_over_the_gain():
    w = random_kernel(12, 3, 3, seed=6)
    g = procrustes_gain(12, 3)
    full = project_kernel(w, 6, g, "svd", support="full")  # exact on the circular operator
    state = operator_state(full, 6, (0, 0), g)
    assert state["circular_min"] == pytest.approx(1.0) and state["circular_max"] == pytest.approx(1.0)
    sv = np_zero_padded_sv(w, 6, 1)
    state = operator_state(w, 6, (1, 1), g)
    assert state["zero_padded_min"] == pytest.approx(sv.min() / g) and state[
        "zero_padded_max"
    ] == pytest.approx(sv.max() / g)
    circ = np_circular_sv(w, 6)
    assert (state["circular_min"], state["circular_max"]) == pytest.approx((circ.min() / g, circ.max() / g))


def test_records_hold_finite_min_max_per_layer_and_epoch():
    torch.manual_seed(3)
    model = Stem()
    method = ProcrustesProjection(every=1)
    method.attach(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in (1, 2):
        for step in range(3):
            loss = model(torch.randn(4, 3, 8, 8)).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            method.after_step(model, step)
        method.after_epoch(model, epoch)
    resumed = ProcrustesProjection(every=1)
    resumed.load_state_dict(method.state_dict())
    assert resumed.history == method.history
    records = {r["param"]: r for r in method.finalize(model)}
    keys = ("circular_min", "circular_max", "zero_padded_min", "zero_padded_max")
    for r in records.values():
        assert [e["epoch"] for e in r["epochs"]] == [1, 2]
        for entry in [r, *r["epochs"]]:
            values = [entry[k] for k in keys]
            assert all(math.isfinite(v) and v > 0 for v in values)
            assert entry["circular_min"] <= entry["circular_max"]
            assert entry["zero_padded_min"] <= entry["zero_padded_max"]
    trans = records["trans.weight"]  # 1x1: circular = zero-padded = exact
    assert trans["circular_min"] == pytest.approx(1.0, abs=1e-5) and trans[
        "zero_padded_max"
    ] == pytest.approx(1.0, abs=1e-5)
    stem = records["stem.weight"]
    sv = np_zero_padded_sv(model.stem.weight, 8, 1) / stem["gain"]
    assert (stem["zero_padded_min"], stem["zero_padded_max"]) == pytest.approx((sv.min(), sv.max()), rel=1e-6)
    assert stem["relu_after"] and not trans["relu_after"]
    json.dumps(list(records.values()))


def test_projection_option_errors():
    with pytest.raises(ValueError, match="projection must be one of"):
        ProcrustesProjection(projection="exact")


def test_a_trained_run_records_the_state_per_layer_and_epoch(tiny_config, monkeypatch, tmp_path):
    """End to end through the trainer: the checkpoint's procrustes records carry one state per epoch."""
    import normbench.training.trainer as train_mod
    from normbench.config import run_config, run_specs, validate_config

    class Digits(nn.Module):
        def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
            super().__init__()
            self.stem = ProjectedConv2d(in_channels, 8, 3, padding=1, bias=False)
            self.trans = ProjectedConv2d(8, 16, 1, stride=2, bias=False)
            self.fc = nn.Linear(16, num_classes)

        def forward(self, x):
            return self.fc(torch.relu(self.trans(self.stem(x))).mean((2, 3)))

    monkeypatch.setattr(train_mod, "build_model", lambda name, num_classes, in_channels: Digits(num_classes))
    exp = tiny_config["experiments"]["gap"]
    exp.update(models=["preact_resnet20"], seeds=[0], epochs=2, batch_size=256, methods=["procrustes"])
    exp["method_options"] = {"procrustes": {"projection": "alternate", "alternate_iterations": 50}}
    config = validate_config(tiny_config)
    cfg = run_config(config, next(iter(run_specs(config))))
    train_mod.train_run(cfg, tmp_path / "run", log=lambda m: None)
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    recs = {r["param"]: r for r in ckpt["constraints"]}
    assert [e["epoch"] for e in recs["stem.weight"]["epochs"]] == [1, 2]
    assert recs["stem.weight"]["projection"] == "alternate"
    assert recs["trans.weight"]["relu_after"] and recs["stem.weight"]["alternate_passes"] <= 50
    for e in recs["stem.weight"]["epochs"]:
        assert math.isfinite(e["zero_padded_min"]) and math.isfinite(e["alternate_residual"])
    # the metrics log holds the same state after each epoch's record, as schema-checked procrustes_state records
    from normbench.runs.folder import read_records

    log = read_records(tmp_path / "run" / "metrics.jsonl")
    kinds = [r["kind"] for r in log]
    assert kinds == ["epoch", "procrustes_state", "epoch", "procrustes_state"], kinds
    states = [r for r in log if r["kind"] == "procrustes_state"]
    assert [r["epoch"] for r in states] == [1, 2]
    assert {"epoch": 2, **states[1]["layers"]["stem.weight"]} == recs["stem.weight"]["epochs"][1]
