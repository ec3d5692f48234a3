"""Backward-error modulation (Xie, Xiong, Pu, CVPR 2017, Sec. 3.3 and 4).

The maths
---------
In each iteration, for the parametric layers ``l`` (convolutions by default) met by the backward pass, let
``e^l = dLoss/d(output of layer l)`` be the error arriving at layer ``l`` and ``q^l = mean((e^l)^2)`` its second
moment (over the mini-batch, channels and positions). Going down from layer ``l+1`` to layer ``l`` the error
is rescaled by

    rho = sqrt(q^(l+1) / q^l),        e^l <- rho e^l,

"only when the magnitudes of propagated signals of consecutive layers mismatch" (Sec. 4). The paper leaves the
mismatch test open; we modulate when the magnitude ratio ``rho`` leaves ``[1/threshold, threshold]``
(``threshold = 2`` by default, our choice: second moments differing by more than a factor of 4). ``q^(l+1)`` is
the (possibly modulated) moment of the layer visited just before, so with ``threshold = 1`` every layer receives
the top layer's magnitude (Sec. 3.3: "if we modulate all the layers as long as q^{l+1} != q^l, then the
magnitude of propagated signal will tend to be identical with the input error signal").
The rescaled error is what the layer's weight gradient and everything below it see: modulation acts as a
per-layer adaptive learning rate (Sec. 6).

Modulation runs for the first ``n_iters`` iterations only, then training continues with orthonormality alone
(Sec. 5.3). The paper gives no value of ``n``; it derives it from Fig. 4 ("About after 2000 to 3000 iterations"
the error profile settles). The default, 2000 (the lower end), is our choice, and config/paper.yaml uses it.

Sec. 5.3's "always" regime ("Keeping the magnitude of error signals to be isometric ... undermines propagation
of signals (81.6% vs. 73.5% on CIFAR-10)") has two readings, both run by config/paper.yaml: every iteration at
the default threshold (``n_iters`` larger than any run, experiment ``xie2017_modulation_always``) and every
iteration at every layer (also ``threshold = 1``, experiment ``xie2017_modulation_always_isometric``).

Implementation: ``attach`` registers a forward hook on every selected layer that puts a tensor hook on its
output; the tensor hook receives ``e^l`` during backward and returns ``rho e^l``. "Consecutive" means
consecutive in the order the backward pass reaches the layers (top to bottom in a plain network). A forward
pre-hook on the model starts a fresh chain at every forward pass. All arithmetic stays on the device (no
host synchronisation); ``trace`` keeps, for the latest backward pass, each visited layer's name, incoming
second moment and applied scale.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from normbench.methods import register_method
from normbench.methods.base import Method
from normbench.methods.svb import weight_layers


@register_method
class Modulation(Method):
    """Rescale the backward error between consecutive parametric layers for the first ``n_iters`` iterations.

    Hook point: **in backward** (tensor hooks on the layers' outputs, registered by ``attach``); the iteration
    count advances in ``after_step``. Options: threshold (2.0, on the magnitude ratio ``rho``; 1 modulates
    always), n_iters (2000; 0 disables), layers ("conv" | "conv+linear" | "linear").
    """

    name = "modulation"
    # The hooks read and write Python state every step (the chain's moment, the active flag, the trace):
    # a CUDA graph would freeze them, so the fast engine runs this method without graphs.
    graph_safe = False

    def __init__(self, threshold: float = 2.0, n_iters: int = 2000, layers: str = "conv") -> None:
        if threshold < 1:
            raise ValueError(f"modulation: threshold must be >= 1, got {threshold}")
        if n_iters < 0:
            raise ValueError(f"modulation: n_iters must be >= 0, got {n_iters}")
        weight_layers(nn.Module(), layers)
        self.threshold, self.n_iters, self.layers = float(threshold), int(n_iters), layers
        self.iteration = 0
        self.trace: list[dict[str, Any]] = []
        self._q_prev: torch.Tensor | None = None
        self._handles: list[Any] = []

    @property
    def active(self) -> bool:
        return self.iteration < self.n_iters

    def attach(self, model: nn.Module) -> None:
        self.detach()
        self._handles.append(model.register_forward_pre_hook(self._new_chain))
        for name, module in weight_layers(model, self.layers):
            self._handles.append(module.register_forward_hook(self._forward_hook(name)))

    def detach(self) -> None:
        """Remove the hooks (a model keeps them otherwise for as long as it lives)."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def _new_chain(self, module: nn.Module, args: Any) -> None:
        self._q_prev = None
        self.trace = []

    def _forward_hook(self, name: str):
        def hook(module: nn.Module, args: Any, output: torch.Tensor) -> None:
            if self.active and torch.is_grad_enabled() and output.requires_grad:
                output.register_hook(lambda grad: self.modulate(name, grad))

        return hook

    def modulate(self, name: str, grad: torch.Tensor) -> torch.Tensor:
        """``rho * grad`` where the magnitudes mismatch, else ``grad``; updates the chain's moment."""
        q = grad.detach().to(torch.promote_types(grad.dtype, torch.float32)).square().mean()
        if self._q_prev is None:
            scale = torch.ones_like(q)
        else:
            rho = torch.sqrt(self._q_prev / q.clamp_min(torch.finfo(q.dtype).tiny))
            mismatch = ((rho > self.threshold) | (rho < 1.0 / self.threshold)) & (q > 0)
            scale = torch.where(mismatch, rho, torch.ones_like(rho))
        self._q_prev = q * scale.square()
        self.trace.append({"layer": name, "q": q, "scale": scale})
        return grad * scale.to(grad.dtype)

    def after_step(self, model: nn.Module, step: int) -> None:
        self.iteration = step + 1
        self._q_prev = None

    def state_dict(self) -> dict[str, Any]:
        return {"iteration": self.iteration}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.iteration = int(state.get("iteration", 0))
