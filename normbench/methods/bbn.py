"""Bounded Batch Normalization (Jia, Tao, Gao, Xu, CVPR 2017, Sec. 5, Algorithm 2).

The maths
---------
At inference a BN layer multiplies channel ``i`` by ``gamma_i / varsigma_i`` with
``varsigma_i = sqrt(running_var_i + bn_eps)`` (eq. 14-15: ``W_tilde = Gamma Sigma W``); by Lemma 1 these
factors bound the singular values of the composed layer. BBN bounds them *relative to their mean*:

    r_i = gamma_i / varsigma_i,      alpha = (1/N) sum_i r_i,
    r_i / alpha  clipped into  [1/(1+eps_bbn), 1+eps_bbn]     by rewriting  gamma_i = varsigma_i * clip(...)

with ``eps_bbn = 1`` (Sec. 6.2; 0.2 for the Table 3 wide ResNets). Like the paper (which does not take absolute
values because the gammas stay positive) we use signed ratios; a layer whose ``alpha <= 0`` is left unchanged.

One pass (the paper's Algorithm 2, the official ``BNScalingBounding``) bounds the ratios relative to the mean
*before* clipping; the clip moves the mean, so afterwards ``r_i / alpha_new`` may leave the band slightly.
``finalize`` therefore repeats the pass until nothing changes, i.e. until a fixed point
``alpha* = mean(clip(r, alpha*/s, alpha* s))`` (``s = 1 + eps_bbn``) is reached (geometrically, within 50 passes
in our tests; a bisection on ``f(alpha) = mean(clip) - alpha`` is the fallback), so the saved ratios lie in the
band relative to their own mean.

Official code (kui-jia/svb ``cnnTrain.lua``): ``bnsBType = 'BBN'`` is this rule; its *default* is
``'rel'``, which bounds ``gamma_i / mean(gamma)`` ignoring the running variance (``mode="rel"`` here).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from normbench.methods import register_method
from normbench.methods.base import BoundingMethod
from normbench.models.layers import bn_layers


def bn_scale(bn: nn.modules.batchnorm._BatchNorm, mode: str = "bbn") -> torch.Tensor:
    """``varsigma``: ``sqrt(running_var + eps)`` (mode "bbn") or ones (mode "rel")."""
    if mode == "rel" or bn.running_var is None:
        return torch.ones_like(bn.weight)
    return torch.sqrt(bn.running_var + bn.eps)


def bbn_ratios(bn: nn.modules.batchnorm._BatchNorm, mode: str = "bbn") -> torch.Tensor:
    """``r_i / alpha``: the quantity BBN bounds (float64)."""
    r = bn.weight.detach().double() / bn_scale(bn, mode).double()
    return r / r.mean()


def bound_ratios(
    r: torch.Tensor, s: float, fixed_point: bool = False, max_passes: int = 1000
) -> torch.Tensor:
    """Clip ``r`` into ``[alpha/s, alpha s]`` with ``alpha = mean(r)``: one pass, or (``fixed_point``) repeated
    passes until the ratios lie in the band relative to their own mean (see the module docstring)."""
    if r.mean() <= 0:
        return r
    for _ in range(max_passes if fixed_point else 1):
        alpha = r.mean()
        r = r.clamp(alpha / s, alpha * s)
        if not fixed_point:
            return r
        q = r / r.mean()
        if q.max() <= s * (1 + 1e-12) and q.min() >= (1 - 1e-12) / s:
            return r
    # Not settled by repeated passes (never seen in tests): bisection on f(alpha) = mean(clip) - alpha,
    # positive at alpha = min(r)/s and negative at alpha = max(r)*s.
    lo, hi = r.min().clamp_min(0) / s, r.max() * s
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if r.clamp(mid / s, mid * s).mean() > mid else (lo, mid)
    return r.clamp(hi / s, hi * s)


@register_method
class BoundedBatchNorm(BoundingMethod):
    """BBN: bound every BN layer's ``gamma_i / (varsigma_i alpha)`` into ``[1/(1+eps), 1+eps]``.

    Hook point: **per epoch** (``after_epoch``, every ``every_epochs`` epochs, right after SVB when composed
    as ``svb+bbn``, as in Algorithm 1 lines 13-15) or every ``every_steps`` optimizer steps.

    Options: eps (1.0), every_epochs (1), every_steps (None), mode ("bbn": the paper's ``gamma/varsigma``;
    "rel": the official code's default ``gamma/mean(gamma)``), fixed_point (False: one pass per application as
    Algorithm 2; ``finalize`` always solves the fixed point).
    ``finalize`` records ``param``, ``kind`` "bbn", ``bounds``, ``alpha`` and the achieved ``min_ratio`` and
    ``max_ratio`` of ``r_i / alpha``.
    """

    name = "bbn"

    def __init__(
        self,
        eps: float = 1.0,
        every_epochs: int = 1,
        every_steps: int | None = None,
        mode: str = "bbn",
        fixed_point: bool = False,
    ) -> None:
        if mode not in ("bbn", "rel"):
            raise ValueError(f"bbn: mode must be 'bbn' or 'rel', got {mode!r}")
        self._init_schedule(eps, every_epochs, every_steps)
        self.mode, self.fixed_point = mode, bool(fixed_point)

    @torch.no_grad()
    def apply(self, model: nn.Module, fixed_point: bool | None = None) -> None:
        """Bound every BN layer once (Algorithm 2)."""
        fp = self.fixed_point if fixed_point is None else fixed_point
        for _, bn in bn_layers(model):
            scale = bn_scale(bn, self.mode).double()
            r = bn.weight.detach().double() / scale
            bn.weight.copy_((bound_ratios(r, 1.0 + self.eps, fp) * scale).to(bn.weight.dtype))

    def finalize(self, model: nn.Module) -> list[dict[str, Any]]:
        self.apply(model, fixed_point=True)
        records = []
        for name, bn in bn_layers(model):
            r = bn.weight.detach().double() / bn_scale(bn, self.mode).double()
            ratios = r / r.mean()
            records.append(
                {
                    "param": f"{name}.weight",
                    "kind": "bbn",
                    "bounds": list(self.bounds),
                    "mode": self.mode,
                    "alpha": r.mean().item(),
                    "min_ratio": ratios.min().item(),
                    "max_ratio": ratios.max().item(),
                }
            )
        return records
