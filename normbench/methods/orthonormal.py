"""Orthonormal initialisation and the orthonormal regularizer (Xie, Xiong, Pu, CVPR 2017, Sec. 3.2 and 4).

The maths
---------
A layer's kernel ``W_tilde`` (``W x H x C x M``) is the matrix ``W_l`` of size ``f_in x f_out`` with
``f_in = W H C`` (one column per filter) and ``f_out = M``. Norm preservation of the backward error needs
orthonormal columns, ``W_l^T W_l = I`` (eq. 2 with the footnote-4 transposition).

*Orthonormal init* (Sec. 4): a random ``f_in``-vector for the first filter, then Gram-Schmidt "channel by
channel". When ``f_in < f_out`` no ``f_out`` orthonormal vectors exist; the paper orthogonalises group-wise:
consecutive groups of at most ``f_in`` filters, each orthonormalised independently (so ``W^T W`` is the identity
on each diagonal block). The paper's group count "f_out/f_in + f_out mod f_in" reads as ``ceil(f_out/f_in)``
groups (full groups of ``f_in`` filters and one of the remainder); that is what we do.

*Orthonormal regularizer*, eq. (3), replacing L2 weight decay (not both):

    R = lambda/2 * sum_l || W_l^T W_l - I ||_F^2,        dR/dW_l = 2 lambda W_l (W_l^T W_l - I).

For ``f_in < f_out`` (``groupwise=True``, the default) the penalty is taken per group of the init,
``sum_g || W_g^T W_g - I ||_F^2``, whose minimum is the group-wise orthonormal set the init starts on; with
``groupwise=False`` eq. (3) is applied literally (its minimum then is not zero). ``lambda`` defaults to 1e-4,
"the regularization coefficient as weight decay" (Sec. 3.2; 1e-4 in He et al.'s CIFAR recipe).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from normbench.methods import register_method
from normbench.methods.base import Method
from normbench.methods.svb import weight_layers


def filter_matrix(weight: torch.Tensor) -> torch.Tensor:
    """``W_l`` (``f_in x f_out``): one column per output filter."""
    return weight.reshape(weight.shape[0], -1).t()


def filter_groups(f_in: int, f_out: int, groupwise: bool = True) -> list[slice]:
    """Column groups of ``W_l``: one group if ``f_in >= f_out`` (or not groupwise), else runs of ``f_in``."""
    if not groupwise or f_in >= f_out:
        return [slice(0, f_out)]
    return [slice(i, min(i + f_in, f_out)) for i in range(0, f_out, f_in)]


def gram_schmidt(vectors: torch.Tensor) -> torch.Tensor:
    """Orthonormalise the columns of ``vectors`` (``d x n``, ``n <= d``) in order, by modified Gram-Schmidt.

    Each new column has its components along the previous ones removed (twice, for float stability) and is
    normalised.
    """
    d, n = vectors.shape
    if n > d:
        raise ValueError(f"cannot orthonormalise {n} vectors in dimension {d}")
    q = vectors.clone()
    for j in range(n):
        v = q[:, j]
        for _ in range(2):
            if j:
                v = v - q[:, :j] @ (q[:, :j].t() @ v)
        q[:, j] = v / v.norm()
    return q


def orthonormal_(
    weight: torch.Tensor, groupwise: bool = True, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Fill ``weight`` in place so that ``W_l^T W_l = I`` (block-wise per group when ``f_in < f_out``)."""
    f_out = weight.shape[0]
    f_in = weight[0].numel()
    if not groupwise and f_in < f_out:
        raise ValueError(f"f_in = {f_in} < f_out = {f_out}: orthonormal columns need groupwise=True")
    w = torch.empty(f_in, f_out, dtype=torch.float64)
    for g in filter_groups(f_in, f_out, groupwise):
        w[:, g] = gram_schmidt(torch.randn(f_in, g.stop - g.start, dtype=torch.float64, generator=generator))
    with torch.no_grad():
        weight.copy_(w.t().reshape(weight.shape).to(weight.dtype))
    return weight


def orthonormal_penalty(weight: torch.Tensor, groupwise: bool = True) -> torch.Tensor:
    """``sum_g || W_g^T W_g - I ||_F^2`` of one layer (differentiable)."""
    w = filter_matrix(weight)
    total = weight.new_zeros(())
    for g in filter_groups(w.shape[0], w.shape[1], groupwise):
        wg = w[:, g]
        gram = wg.t() @ wg
        total = total + (gram - torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)).square().sum()
    return total


def orthonormal_penalty_grad(weight: torch.Tensor, coef: float, groupwise: bool = True) -> torch.Tensor:
    """Closed-form gradient of ``coef/2 * orthonormal_penalty(W)``: ``2 coef W_g (W_g^T W_g - I)`` per group,
    in the kernel's shape."""
    w = filter_matrix(weight.detach())
    grad = torch.zeros_like(w)
    for g in filter_groups(w.shape[0], w.shape[1], groupwise):
        wg = w[:, g]
        grad[:, g] = 2.0 * coef * wg @ (wg.t() @ wg - torch.eye(wg.shape[1], dtype=w.dtype, device=w.device))
    return grad.t().reshape(weight.shape)


@register_method
class OrthonormalInit(Method):
    """Orthonormal (Gram-Schmidt, group-wise when ``f_in < f_out``) init of every conv and FC weight.

    Hook point: **attach** (once, before training). Options: layers ("conv+linear" | "conv" | "linear"),
    groupwise (True), seed (None: ``torch.initial_seed()`` at attach, the run's seed). Biases are zeroed.
    No constraint is held during training, so ``finalize`` records nothing.
    """

    name = "ortho_init"

    def __init__(self, layers: str = "conv+linear", groupwise: bool = True, seed: int | None = None) -> None:
        weight_layers(nn.Module(), layers)
        self.layers, self.groupwise, self.seed = layers, bool(groupwise), seed

    def attach(self, model: nn.Module) -> None:
        gen = torch.Generator().manual_seed(self.seed if self.seed is not None else torch.initial_seed())
        for _, m in weight_layers(model, self.layers):
            orthonormal_(m.weight, self.groupwise, gen)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)


@register_method
class OrthonormalRegularizer(Method):
    """The orthonormal regularizer of eq. (3), which replaces weight decay.

    Hook point: **in the loss** (``loss_term`` returns ``coef/2 * sum_l sum_g ||W_g^T W_g - I||_F^2``; the
    optimizer's L2 weight decay is switched off for the whole model, ``uses_weight_decay = False``).
    Options: coef (lambda, 1e-4), groupwise (True), layers ("conv+linear" | "conv" | "linear").
    ``finalize`` records each weight's penalty (``kind`` "ortho_reg"; a soft constraint, no bound guaranteed).
    """

    name = "ortho_reg"
    uses_weight_decay = False

    def __init__(self, coef: float = 1e-4, groupwise: bool = True, layers: str = "conv+linear") -> None:
        if coef < 0:
            raise ValueError(f"ortho_reg: coef must be >= 0, got {coef}")
        weight_layers(nn.Module(), layers)
        self.coef, self.groupwise, self.layers = float(coef), bool(groupwise), layers

    def loss_term(self, model: nn.Module) -> torch.Tensor | None:
        layers = weight_layers(model, self.layers)
        if not layers or self.coef == 0:
            return None
        return 0.5 * self.coef * sum(orthonormal_penalty(m.weight, self.groupwise) for _, m in layers)

    def finalize(self, model: nn.Module) -> list[dict[str, Any]]:
        with torch.no_grad():
            return [
                {
                    "param": f"{n}.weight",
                    "kind": "ortho_reg",
                    "coef": self.coef,
                    "groupwise": self.groupwise,
                    "penalty": orthonormal_penalty(m.weight.double(), self.groupwise).item(),
                }
                for n, m in weight_layers(model, self.layers)
            ]
