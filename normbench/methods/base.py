"""The interface every training method (constraint, regularizer, modulation) implements.

A method attaches to any registry model and acts at documented hook points of the training loop
(:func:`normbench.train.train_run`), in this order within one run:

    attach(model)                  once, after the model is built (e.g. orthonormal init, backward hooks)
    per iteration:
        loss = task_loss + loss_term(model)          "in the loss"   (e.g. orthonormal regularizer)
        loss.backward()                              "in backward"   (hooks registered by attach)
        optimizer.step()
        after_step(model, step)                      "after the step" (e.g. Procrustes projection)
    after_epoch(model, epoch)      at the end of every epoch (e.g. SVB, BBN)
    finalize(model) -> records     once after training: the saved model must satisfy its constraints, so a
                                   method whose schedule would not leave them satisfied applies itself once
                                   more here, and returns one record per constrained parameter:
                                   {"param": state-dict name, "kind": ..., plus its target ("gain" and "grid"
                                   for procrustes, "bounds" for svb/bbn)}

``uses_weight_decay`` tells the trainer whether the optimizer's L2 weight decay stays on (the orthonormal
regularizer replaces it). ``state_dict``/``load_state_dict`` carry any state a resumed run needs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Method:
    """Base class: the plain baseline, which does nothing at every hook."""

    name = "none"
    uses_weight_decay = True

    def __init__(self, **options: Any) -> None:
        if options:
            raise ValueError(f"method {self.name!r} takes no options, got {sorted(options)}")

    def attach(self, model: nn.Module) -> None:
        """Called once after the model is built and before the optimizer exists."""

    def loss_term(self, model: nn.Module) -> torch.Tensor | None:
        """Extra loss added to the task loss every iteration, or ``None``."""
        return None

    def after_step(self, model: nn.Module, step: int) -> None:
        """Called after every optimizer step; ``step`` counts from 0 over the whole run."""

    def after_epoch(self, model: nn.Module, epoch: int) -> None:
        """Called at the end of every epoch; ``epoch`` counts from 1."""

    def finalize(self, model: nn.Module) -> list[dict[str, Any]]:
        """Leave the model satisfying its constraints; return one record per constrained parameter."""
        return []

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
