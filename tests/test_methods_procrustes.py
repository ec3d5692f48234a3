"""Procrustes projection (Zaeemzadeh et al. 2020): the maths, checked independently with NumPy.

The reference singular values come from NumPy: the kernel zero-padded to the grid, its 2-D FFT per channel
pair, and an SVD per frequency (Theorem 3). Nothing of normbench's FFT/SVD code is used for the reference.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from normbench.methods import build_method
from normbench.methods.procrustes import (
    ProcrustesProjection,
    conjugated_reconstruction,
    procrustes_gain,
    project_kernel,
    project_kernels,
)
from normbench.models.layers import ProjectedConv2d


def np_spectrum(w: np.ndarray, n: int) -> np.ndarray:
    """DFT blocks (n, n, c_out, c_in) of the kernel zero-padded to n x n."""
    c_out, c_in, kh, kw = w.shape
    padded = np.zeros((c_out, c_in, n, n), dtype=w.dtype)
    padded[:, :, :kh, :kw] = w
    return np.fft.fft2(padded, axes=(2, 3)).transpose(2, 3, 0, 1)


def np_operator_sv(w: torch.Tensor, n: int) -> np.ndarray:
    return np.linalg.svd(np_spectrum(w.detach().double().numpy(), n), compute_uv=False)


def random_kernel(c_out: int, c_in: int, k: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(c_out, c_in, k, k, dtype=torch.float64, generator=g) / math.sqrt(c_in * k * k)


CASES = [  # c_out, c_in, k, grid
    (16, 4, 1, 8),  # widening 1x1 (ProcResNet transitions)
    (4, 16, 1, 8),  # narrowing 1x1
    (12, 3, 3, 8),  # widening 3x3 (the stem, smaller)
    (5, 12, 3, 8),  # narrowing 3x3
    (6, 6, 3, 5),  # square 3x3, odd grid
]


@pytest.mark.parametrize("c_out,c_in,k,n", CASES)
@pytest.mark.parametrize("path", ["svd", "newton_schulz"])
@pytest.mark.parametrize("rule", ["paper", "ratio"])
def test_projected_operator_singular_values_equal_gain(c_out, c_in, k, n, path, rule):
    w = random_kernel(c_out, c_in, k)
    g = procrustes_gain(c_out, c_in, rule)
    expected = math.sqrt(c_out / min(c_out, c_in)) if rule == "paper" else math.sqrt(c_out / c_in)
    assert g == pytest.approx(expected)
    q = project_kernel(w, n, g, path, iterations=40, support="full")
    if k > 1:
        assert q.shape[-2:] == (n, n)
    sv = np_operator_sv(q, n)
    assert sv.shape == (n, n, min(c_out, c_in))
    np.testing.assert_allclose(sv, g, rtol=1e-9, atol=0)


@pytest.mark.parametrize("c_out,c_in,k,n", CASES)
def test_projection_is_the_procrustes_solution(c_out, c_in, k, n):
    """The projected spectrum is g U V^H of the original one (NumPy SVD, complex arithmetic)."""
    w = random_kernel(c_out, c_in, k, seed=1)
    g = procrustes_gain(c_out, c_in)
    p = np_spectrum(w.numpy(), n)
    u, _, vh = np.linalg.svd(p, full_matrices=False)
    target = g * u @ vh
    got = np_spectrum(project_kernel(w, n, g, "svd", support="full").numpy(), n)
    np.testing.assert_allclose(got, target, atol=1e-10)


@pytest.mark.parametrize("c_out,c_in,k,n", CASES)
def test_newton_schulz_agrees_with_svd(c_out, c_in, k, n):
    w = random_kernel(c_out, c_in, k, seed=2)
    g = procrustes_gain(c_out, c_in)
    exact = project_kernel(w, n, g, "svd", support="full")
    fast = project_kernel(w, n, g, "newton_schulz", iterations=40, support="full")
    torch.testing.assert_close(fast, exact, rtol=0, atol=1e-10)
    # Training regime: a kernel one small step away from the constraint set; the default 10 iterations suffice.
    noisy = exact + 0.02 * exact.std() * torch.randn(
        exact.shape, dtype=exact.dtype, generator=torch.Generator().manual_seed(3)
    )
    torch.testing.assert_close(
        project_kernel(noisy, n, g, "newton_schulz", 10, "full"),
        project_kernel(noisy, n, g, "svd", support="full"),
        rtol=0,
        atol=1e-9,
    )


@pytest.mark.parametrize("c_out,c_in,k,n", CASES)
@pytest.mark.parametrize("path", ["svd", "newton_schulz"])
def test_projecting_twice_changes_nothing(c_out, c_in, k, n, path):
    w = random_kernel(c_out, c_in, k, seed=4)
    g = procrustes_gain(c_out, c_in)
    once = project_kernel(w, n, g, path, iterations=40, support="full")
    twice = project_kernel(once, n, g, path, iterations=40, support="full")
    torch.testing.assert_close(twice, once, rtol=0, atol=1e-12)


def test_float32_projection_meets_float_tolerance():
    w = random_kernel(32, 8, 1).float()
    g = procrustes_gain(32, 8)
    for path in ("svd", "newton_schulz"):
        sv = np_operator_sv(project_kernel(w, None, g, path), 4)
        np.testing.assert_allclose(sv, g, rtol=2e-6)


def test_batched_projection_equals_one_by_one():
    ws = [
        random_kernel(8, 4, 1, 0),
        random_kernel(8, 4, 1, 1),
        random_kernel(8, 4, 3, 2),
        random_kernel(8, 4, 3, 3),
        random_kernel(4, 8, 3, 4),
    ]
    grids = [None, 8, 8, 6, 8]
    gains = [procrustes_gain(w.shape[0], w.shape[1]) for w in ws]
    batched = project_kernels(ws, grids, gains, "svd", support="full")
    for w, n, g, b in zip(ws, grids, gains, batched, strict=True):
        torch.testing.assert_close(b, project_kernel(w, n, g, "svd", support="full"), rtol=0, atol=1e-12)


def test_one_by_one_kernel_grid_is_irrelevant():
    """Every DFT block of a 1x1 kernel is the weight matrix: the projection is g U V^T of that matrix."""
    w = random_kernel(16, 4, 1)
    g = procrustes_gain(16, 4)
    q = project_kernel(w, None, g, "svd")
    u, _, vh = np.linalg.svd(w[:, :, 0, 0].numpy(), full_matrices=False)
    np.testing.assert_allclose(q[:, :, 0, 0].numpy(), g * u @ vh, atol=1e-12)
    for n in (1, 4, 7):
        np.testing.assert_allclose(np_operator_sv(q, n), g, rtol=1e-12)


def test_official_conjugation_reflects_the_kernel():
    """The official reconstruction conj(g polar(P)) is the projected kernel reflected through the origin.

    Harmless for 1x1 kernels, wrong for 3x3 ones: its truncation to [0:3, 0:3] keeps about a third of the
    kernel's energy (the correct kernel keeps almost all of it) and ends farther from norm preserving.
    """
    n = 8
    w = random_kernel(12, 3, 3, seed=5)
    g = procrustes_gain(12, 3)
    full = project_kernel(w, n, g, "svd", support="full")
    reflected = torch.roll(torch.flip(full, dims=(-2, -1)), shifts=(1, 1), dims=(-2, -1))
    official = conjugated_reconstruction(w, n, g)
    torch.testing.assert_close(official, reflected, rtol=0, atol=1e-12)
    kept = (full[..., :3, :3].norm() / full.norm()).item()
    official_kept = (official[..., :3, :3].norm() / official.norm()).item()
    assert kept > 0.95 and official_kept < 0.5
    ours_dev = np.abs(np_operator_sv(full[..., :3, :3], n) / g - 1).max()
    official_dev = np.abs(np_operator_sv(official[..., :3, :3], n) / g - 1).max()
    assert official_dev > ours_dev
    w1 = random_kernel(12, 3, 1, seed=6)
    torch.testing.assert_close(
        conjugated_reconstruction(w1, n, g)[..., :1, :1], project_kernel(w1, n, g, "svd"), rtol=0, atol=1e-12
    )


def test_truncation_breaks_the_constraint_and_alternation_restores_it():
    """Project-then-truncate keeps a 3x3 kernel; repeating it converges for a tall (stem-like) layer."""
    n = 8
    w = random_kernel(24, 3, 3, seed=7)
    g = procrustes_gain(24, 3)
    once = project_kernel(w, n, g, "svd", support="truncate")
    assert once.shape == w.shape
    dev_once = np.abs(np_operator_sv(once, n) - g).max() / g
    assert dev_once > 1e-2
    for _ in range(150):
        w = project_kernel(w, n, g, "svd", support="truncate")
    dev = np.abs(np_operator_sv(w, n) - g).max() / g
    assert dev < 1e-4 < dev_once


# ---- the method -------------------------------------------------------------------------------------------


class TinyProcNet(nn.Module):
    """Stem 3x3 (3 -> 12) and a 1x1 stride-2 transition (12 -> 24), both projected, plus ordinary layers."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = ProjectedConv2d(3, 12, 3, padding=1, bias=False)
        self.body = nn.Sequential(nn.BatchNorm2d(12), nn.ReLU(), nn.Conv2d(12, 12, 3, padding=1, bias=False))
        self.trans = ProjectedConv2d(12, 24, 1, stride=2, bias=False)
        self.fc = nn.Linear(24, 5)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.body(x)
        return self.fc(self.trans(x).mean((2, 3)))


def _train(model, method, steps, seed=0):
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for step in range(steps):
        x = torch.randn(8, 3, 8, 8, generator=gen)
        y = torch.randint(0, 5, (8,), generator=gen)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        method.after_step(model, step)


def test_method_projects_after_every_second_step():
    torch.manual_seed(0)
    model = TinyProcNet()
    method = build_method("procrustes")
    method.attach(model)
    assert method.every == 2 and method.path == "newton_schulz"
    _train(model, method, 1)
    assert method.projections == 0
    _train(model, method, 2)
    assert method.projections == 1  # after step index 1
    assert model.stem.grid == 8 and model.trans.grid == 8
    g = procrustes_gain(24, 12)
    np.testing.assert_allclose(np_operator_sv(model.trans.weight, 4), g, rtol=1e-5)


def test_method_newton_schulz_keeps_one_by_one_exact_during_training():
    torch.manual_seed(1)
    model = TinyProcNet()
    method = ProcrustesProjection(every=1)
    method.attach(model)
    g = procrustes_gain(24, 12)
    for step in range(6):
        _train(model, method, 1, seed=step)
        np.testing.assert_allclose(np_operator_sv(model.trans.weight, 4), g, rtol=1e-5)
    assert method.warm == {"stem", "trans"}


def test_probability_schedule_is_deterministic_and_resumable():
    a = ProcrustesProjection(probability=0.5, seed=11)
    a.generator.manual_seed(11)
    draws = [a.due(s) for s in range(40)]
    assert 5 < sum(draws) < 35
    b = ProcrustesProjection(probability=0.5, seed=11)
    b.generator.manual_seed(11)
    assert [b.due(s) for s in range(20)] == draws[:20]
    c = ProcrustesProjection(probability=0.5, seed=99)
    c.load_state_dict(b.state_dict())
    assert [c.due(s) for s in range(20, 40)] == draws[20:]


def test_attach_seeds_the_generator_from_the_run_seed():
    torch.manual_seed(123)
    a = ProcrustesProjection(probability=0.5)
    a.attach(TinyProcNet())
    torch.manual_seed(123)
    b = ProcrustesProjection(probability=0.5)
    b.attach(TinyProcNet())
    assert [a.due(s) for s in range(30)] == [b.due(s) for s in range(30)]


def test_finalize_records_and_satisfies_constraints():
    torch.manual_seed(2)
    model = TinyProcNet()
    method = ProcrustesProjection(every=1)
    method.attach(model)
    _train(model, method, 3)
    records = method.finalize(model)
    state = model.state_dict()
    by_param = {r["param"]: r for r in records}
    assert set(by_param) == {"stem.weight", "trans.weight"} and set(by_param) <= set(state)
    for r in records:
        assert r["kind"] == "procrustes" and r["grid"] == 8
    trans, stem = by_param["trans.weight"], by_param["stem.weight"]
    assert trans["gain"] == pytest.approx(math.sqrt(2)) and stem["gain"] == pytest.approx(2.0)
    assert trans["satisfied"] and trans["max_rel_deviation"] < 1e-5
    # The 3x3 stem keeps its support: the record states the deviation it reached, measured independently.
    sv = np_operator_sv(state["stem.weight"], 8)
    assert stem["max_abs_deviation"] == pytest.approx(np.abs(sv - 2.0).max(), rel=1e-3, abs=1e-7)
    assert stem["satisfied"] == (stem["max_rel_deviation"] <= stem["tolerance"])
    assert stem["max_rel_deviation"] < 1e-3  # alternating passes converge for this tall layer


def test_finalize_needs_the_grid_of_a_3x3_layer():
    model = TinyProcNet()
    method = ProcrustesProjection()
    method.attach(model)
    with pytest.raises(ValueError, match="grid of stem is unknown"):
        method.finalize(model)
    assert ProcrustesProjection(grids={"stem": 8}).finalize(model)[0]["grid"] == 8


def test_method_option_errors():
    with pytest.raises(ValueError, match="either"):
        ProcrustesProjection(every=2, probability=0.5)
    with pytest.raises(ValueError, match="support"):
        ProcrustesProjection(support="full")
    with pytest.raises(ValueError, match="path"):
        ProcrustesProjection(path="qr")
    with pytest.raises(ValueError, match="no ProjectedConv2d"):
        ProcrustesProjection().attach(nn.Conv2d(3, 4, 3))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_projection_matches_cpu():
    ws = [random_kernel(64, 3, 3, 0).float(), random_kernel(128, 64, 1, 1).float()]
    gains = [procrustes_gain(64, 3), procrustes_gain(128, 64)]
    for path in ("svd", "newton_schulz"):
        cpu = project_kernels(ws, [32, 16], gains, path, 30, "full")
        gpu = project_kernels([w.cuda() for w in ws], [32, 16], gains, path, 30, "full")
        for a, b in zip(cpu, gpu, strict=True):
            assert b.is_cuda
            torch.testing.assert_close(b.cpu(), a, rtol=0, atol=1e-4)


@pytest.mark.slow
def test_procresnet166_projection_and_finalize():
    """The registry's ProcResNet-166: two training steps with the projection, then the checkpoint records."""
    from normbench.models import build_model

    torch.manual_seed(0)
    model = build_model("procresnet166")
    method = build_method("procrustes", {"procrustes": {"every": 1}})
    method.attach(model)
    _train_cifar(model, method, steps=2)
    records = {r["param"]: r for r in method.finalize(model)}
    assert len(records) == 3 and set(records) <= set(model.state_dict())
    assert all(r["satisfied"] for r in records.values())
    assert records["stem.weight"]["grid"] == 32 and records["stem.weight"]["gain"] == pytest.approx(
        math.sqrt(64 / 3)
    )


def _train_cifar(model, method, steps):
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for step in range(steps):
        x = torch.randn(4, 3, 32, 32, generator=gen)
        y = torch.randint(0, 10, (4,), generator=gen)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        method.after_step(model, step)
