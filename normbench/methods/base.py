"""The interface every training method (constraint, regularizer, modulation) implements.

A method attaches to any registry model and acts at documented hook points of the training loop
(:func:`normbench.training.trainer.train_run`), in this order within one run:

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
regularizer replaces it). ``graph_safe`` tells the fast engine (:mod:`normbench.training.engine`) whether ``loss_term``
and the backward hooks are pure tensor functions of the model that a CUDA graph can capture once and replay
(no Python state read or written per step); ``after_step``, ``after_epoch`` and ``finalize`` always run on the
host, between replays, so they need not be. ``state_dict``/``load_state_dict`` carry any state a resumed run needs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Method:
    """Base class: the plain baseline, which does nothing at every hook."""

    name = "none"
    uses_weight_decay = True
    graph_safe = True

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

    def after_epoch(self, model: nn.Module, epoch: int) -> list[dict[str, Any]] | None:
        """Called at the end of every epoch; ``epoch`` counts from 1. Returns the records (if any) the trainer
        appends to the run's metrics log after the epoch's record (e.g. ``procrustes_state``)."""

    def finalize(self, model: nn.Module) -> list[dict[str, Any]]:
        """Leave the model satisfying its constraints; return one record per constrained parameter."""
        return []

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class BoundingMethod(Method):
    """A method that bounds weights into [1/(1+eps), 1+eps] at a schedule: after every ``every_epochs``-th
    epoch, or, when ``every_steps`` is set, after every ``every_steps``-th optimizer step (SVB, BBN).

    Subclasses implement ``apply(model)``, one bounding pass over the model.
    """

    def _init_schedule(self, eps: float, every_epochs: int, every_steps: int | None) -> None:
        if eps < 0:
            raise ValueError(f"{self.name}: eps must be >= 0, got {eps}")
        if every_epochs < 1 or (every_steps is not None and every_steps < 1):
            raise ValueError(f"{self.name}: every_epochs and every_steps must be >= 1")
        self.eps, self.every_epochs, self.every_steps = float(eps), int(every_epochs), every_steps

    @property
    def bounds(self) -> tuple[float, float]:
        return 1.0 / (1.0 + self.eps), 1.0 + self.eps

    def apply(self, model: nn.Module) -> None:
        raise NotImplementedError

    def after_step(self, model: nn.Module, step: int) -> None:
        if self.every_steps is not None and (step + 1) % self.every_steps == 0:
            self.apply(model)

    def after_epoch(self, model: nn.Module, epoch: int) -> None:
        if self.every_steps is None and epoch % self.every_epochs == 0:
            self.apply(model)
