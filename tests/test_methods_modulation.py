"""Backward-error modulation (Xie et al. 2017): the rescaling rule, its threshold and its end after n steps.

The reference gradients are computed by hand, layer by layer, with ``torch.autograd.grad`` on a chain of
convolutions whose weights are scaled so that consecutive error magnitudes mismatch.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from normbench.methods import build_method
from normbench.methods.modulation import Modulation

SCALES = [1.0, 0.2, 3.0, 1.1]  # weight scales of conv1..conv4: error magnitudes change between layers


def make_chain(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    layers = []
    for i, s in enumerate(SCALES):
        conv = nn.Conv2d(3 if i == 0 else 6, 6, 3, padding=1, bias=False).double()
        with torch.no_grad():
            conv.weight.normal_(0, s / math.sqrt(conv.weight[0].numel()))
        layers += [conv, nn.Tanh()]
    return nn.Sequential(*layers)


def data(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(4, 3, 6, 6, dtype=torch.float64, generator=g), torch.randn(
        4, 6, 6, 6, dtype=torch.float64, generator=g
    )


def reference_grads(model: nn.Sequential, x, target, threshold: float):
    """Hand-made modulated backward: e^l <- rho e^l with rho = sqrt(q^(l+1)/q^l) when rho leaves the band."""
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    inputs, outputs, h = [], [], x
    for m in model:
        if isinstance(m, nn.Conv2d):
            inputs.append(h)
            h = m(h)
            outputs.append(h)
        else:
            h = m(h)
    loss = 0.5 * ((h - target) ** 2).mean()
    e = torch.autograd.grad(loss, outputs[-1], retain_graph=True)[0]
    grads, scales, q_prev = [None] * len(convs), [], None
    for layer in range(len(convs) - 1, -1, -1):
        q = (e**2).mean()
        scale = 1.0
        if q_prev is not None:
            rho = math.sqrt(q_prev / q)
            if rho > threshold or rho < 1 / threshold:
                scale = rho
        e = e * scale
        q_prev = q.item() * scale**2
        scales.append(scale)
        grads[layer] = torch.autograd.grad(outputs[layer], convs[layer].weight, e, retain_graph=True)[0]
        if layer:
            # error at the previous conv's output: back through this conv and the Tanh between them
            e = torch.autograd.grad(outputs[layer], outputs[layer - 1], e, retain_graph=True)[0]
    return grads, scales


def modulated_grads(model, x, target, method):
    model.zero_grad()
    out = model(x)
    (0.5 * ((out - target) ** 2).mean()).backward()
    return [m.weight.grad.clone() for m in model if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize("threshold", [1.0, 1.5, 4.0])
def test_modulation_rescales_the_backward_error_as_specified(threshold):
    model = make_chain()
    x, target = data()
    expected, scales = reference_grads(model, x, target, threshold)
    assert any(s != 1.0 for s in scales) and (threshold == 1.0 or any(s == 1.0 for s in scales[1:]))
    method = Modulation(threshold=threshold, n_iters=10)
    method.attach(model)
    got = modulated_grads(model, x, target, method)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-14)
    assert [t["layer"] for t in method.trace] == ["6", "4", "2", "0"]
    torch.testing.assert_close(
        torch.stack([t["scale"] for t in method.trace]).double(),
        torch.tensor(scales, dtype=torch.float64),
        rtol=1e-5,
        atol=0,
    )


def test_always_modulating_equalises_the_magnitudes():
    """threshold = 1: every layer's (modulated) error has the top layer's second moment."""
    model = make_chain(3)
    x, target = data(4)
    method = Modulation(threshold=1.0)
    method.attach(model)
    modulated_grads(model, x, target, method)
    moments = [(t["q"] * t["scale"] ** 2).item() for t in method.trace]
    assert moments == pytest.approx([moments[0]] * len(moments), rel=1e-5)


def test_modulation_stops_after_n_iterations():
    model = make_chain()
    x, target = data()
    plain = modulated_grads(model, x, target, None)
    method = Modulation(threshold=1.0, n_iters=3)
    method.attach(model)
    for step in range(3):
        assert method.active
        changed = modulated_grads(model, x, target, method)
        assert not all(torch.allclose(a, b) for a, b in zip(changed, plain, strict=True))
        method.after_step(model, step)
    assert not method.active
    after = modulated_grads(model, x, target, method)
    for a, b in zip(after, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert method.trace == []  # no hook fired
    resumed = Modulation(threshold=1.0, n_iters=3)
    resumed.load_state_dict(method.state_dict())
    assert resumed.iteration == 3 and not resumed.active


def test_huge_threshold_changes_nothing_and_detach_removes_hooks():
    model = make_chain()
    x, target = data()
    plain = modulated_grads(model, x, target, None)
    method = Modulation(threshold=1e30)
    method.attach(model)
    for a, b in zip(modulated_grads(model, x, target, method), plain, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    method.detach()
    modulated_grads(model, x, target, None)
    assert method.trace == [] or len(method.trace) == 4  # nothing new was appended after detach


def test_in_place_ops_after_a_conv_are_fine():
    """Residual additions done in place on a conv's output (pre-act blocks) do not break the hook."""

    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(4, 4, 3, padding=1)
            self.b = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            y = self.b(torch.relu(self.a(x)))
            y += x
            return y

    model = Res()
    method = build_method("modulation", {"modulation": {"threshold": 1.0}})
    method.attach(model)
    model(torch.randn(2, 4, 5, 5)).sum().backward()
    assert [t["layer"] for t in method.trace] == ["b", "a"] and model.a.weight.grad is not None


def test_xie_composite_builds():
    m = build_method("ortho_init+ortho_reg+modulation", {"modulation": {"n_iters": 5, "threshold": 3.0}})
    assert not m.uses_weight_decay
    assert [p.name for p in m.parts] == ["ortho_init", "ortho_reg", "modulation"]
    assert m.parts[2].n_iters == 5
