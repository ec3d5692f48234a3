"""Orthonormal init and regularizer (Xie et al. 2017): W^T W = I (block-wise), gradient vs autograd."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from normbench.methods import build_method
from normbench.methods.orthonormal import (
    OrthonormalInit,
    OrthonormalRegularizer,
    filter_groups,
    filter_matrix,
    gram_schmidt,
    orthonormal_,
    orthonormal_penalty,
    orthonormal_penalty_grad,
)
from normbench.training.trainer import build_optimizer


def gram(weight: torch.Tensor) -> torch.Tensor:
    w = weight.detach().double().reshape(weight.shape[0], -1).T  # f_in x f_out, one column per filter
    return w.T @ w


def test_gram_schmidt_orthonormalises_in_order():
    v = torch.randn(10, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    q = gram_schmidt(v)
    torch.testing.assert_close(q.T @ q, torch.eye(6, dtype=torch.float64), atol=1e-12, rtol=0)
    # column j lies in the span of the first j+1 inputs (Gram-Schmidt, not just any orthonormal basis)
    r = q.T @ v
    torch.testing.assert_close(torch.tril(r, -1), torch.zeros(6, 6, dtype=torch.float64), atol=1e-12, rtol=0)
    with pytest.raises(ValueError):
        gram_schmidt(torch.randn(3, 4))


@pytest.mark.parametrize("shape", [(16, 8, 3, 3), (8, 8, 1, 1), (10, 30)])
def test_init_gives_orthonormal_filters(shape):
    w = orthonormal_(torch.empty(shape), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(gram(w), torch.eye(shape[0], dtype=torch.float64), atol=1e-6, rtol=0)


@pytest.mark.parametrize("shape", [(10, 4, 1, 1), (64, 3, 3, 3), (12, 5)])
def test_init_groupwise_when_fan_in_is_smaller(shape):
    """f_in < f_out: groups of at most f_in filters, each orthonormal; W^T W = I on every diagonal block."""
    w = orthonormal_(torch.empty(shape), generator=torch.Generator().manual_seed(2))
    f_out, f_in = shape[0], w[0].numel()
    groups = filter_groups(f_in, f_out)
    assert len(groups) == -(-f_out // f_in) and all(g.stop - g.start <= f_in for g in groups)
    assert groups[0].start == 0 and groups[-1].stop == f_out
    g = gram(w)
    for grp in groups:
        block = g[grp, grp]
        torch.testing.assert_close(block, torch.eye(block.shape[0], dtype=torch.float64), atol=1e-6, rtol=0)
    assert not torch.allclose(g, torch.eye(f_out, dtype=torch.float64), atol=1e-3)  # impossible in full
    with pytest.raises(ValueError, match="groupwise"):
        orthonormal_(torch.empty(shape), groupwise=False)


def test_init_method_covers_conv_and_linear_and_is_seeded():
    def net():
        return nn.Sequential(nn.Conv2d(3, 8, 3, bias=True), nn.Conv2d(8, 8, 1), nn.Flatten(), nn.Linear(8, 4))

    a, b = net(), net()
    build_method("ortho_init", {"ortho_init": {"seed": 5}}).attach(a)
    OrthonormalInit(seed=5).attach(b)
    for ma, mb in zip(a.modules(), b.modules(), strict=True):
        if isinstance(ma, (nn.Conv2d, nn.Linear)):
            torch.testing.assert_close(ma.weight, mb.weight)
            assert torch.count_nonzero(ma.bias) == 0
    torch.testing.assert_close(gram(a[1].weight), torch.eye(8, dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(gram(a[3].weight), torch.eye(4, dtype=torch.float64), atol=1e-6, rtol=0)


@pytest.mark.parametrize("shape", [(16, 8, 3, 3), (10, 4, 1, 1), (6, 9)])
@pytest.mark.parametrize("groupwise", [True, False])
def test_regularizer_gradient_matches_autograd(shape, groupwise):
    coef = 0.37
    w = torch.randn(
        shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3), requires_grad=True
    )
    (0.5 * coef * orthonormal_penalty(w, groupwise)).backward()
    torch.testing.assert_close(orthonormal_penalty_grad(w, coef, groupwise), w.grad, atol=1e-10, rtol=1e-10)
    # eq. (3) literally, for the single-group case: lambda/2 ||W^T W - I||_F^2 with W = f_in x f_out
    wm = filter_matrix(w.detach())
    if not groupwise or wm.shape[0] >= wm.shape[1]:
        literal = 0.5 * coef * ((wm.T @ wm - torch.eye(wm.shape[1], dtype=wm.dtype)) ** 2).sum()
        assert (0.5 * coef * orthonormal_penalty(w.detach(), groupwise)).item() == pytest.approx(
            literal.item()
        )


def test_regularizer_method_replaces_weight_decay_and_is_zero_after_init():
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(16, 4, 1), nn.Flatten(), nn.Linear(4, 3))
    method = build_method("ortho_init+ortho_reg", {"ortho_reg": {"coef": 1e-3}})
    assert not method.uses_weight_decay
    method.attach(model)
    assert method.loss_term(model).item() == pytest.approx(0.0, abs=1e-9)
    opt = build_optimizer(
        model.parameters(),
        {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4},
        method.uses_weight_decay,
    )
    assert opt.param_groups[0]["weight_decay"] == 0.0
    with torch.no_grad():
        model[0].weight.mul_(2)
    term = method.loss_term(model)
    assert term.requires_grad and term.item() > 0
    term.backward()
    torch.testing.assert_close(model[0].weight.grad, orthonormal_penalty_grad(model[0].weight, 1e-3))
    records = method.finalize(model)
    assert {r["param"] for r in records} == {"0.weight", "2.weight", "4.weight"}
    assert all(r["kind"] == "ortho_reg" for r in records)


def test_regularizer_descent_restores_orthonormality():
    w = torch.randn(12, 6, 3, 3, generator=torch.Generator().manual_seed(4)) * 0.3
    w.requires_grad_(True)
    reg = OrthonormalRegularizer(coef=1.0)
    start = orthonormal_penalty(w).item()
    for _ in range(60):
        with torch.no_grad():
            w -= 0.05 * orthonormal_penalty_grad(w, reg.coef)
    assert orthonormal_penalty(w).item() < 1e-4 * start
