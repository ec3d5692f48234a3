"""Several independent trainings in one process, their steps interleaved (``engine.pack``).

A small network leaves a GPU mostly idle: a pre-act ResNet-20 step at batch 128 is a few hundred short kernels,
launched faster than they run only when the launches are cheap. A *pack* trains several seeds of one
(experiment, model, method) in one process instead: each member is a generator that yields after every
training step (:func:`normbench.training.trainer.train_pack` builds them), and :func:`interleave` advances them in turn,
one step each, round robin, until all are done. Each member keeps its own

* model, optimizer, method state, data-order generator and output folder (nothing is shared but the read-only
  data set on the device);
* global CPU random-number state: torch's default generator is saved when a member yields and restored when
  it resumes, so whatever draws from it (model initialisation, a stochastic layer) sees the same sequence as
  in a process of its own;
* CUDA stream (on a GPU): every kernel of a member, its CUDA-graph replays included, is queued on the member's
  stream, so the steps of different seeds can run concurrently on the device while the host queues the next.

The members therefore compute exactly what they compute alone: same batches, same initialisation, same
metrics (``tests/test_pack.py`` checks it on the CPU, where the members simply alternate). What the pack
changes is timing: a member's ``seconds`` are wall-clock seconds of the pack, shared with the other members.
CUDA's default generator is not swapped (nothing in a training step draws from it: augmentation draws on the
CPU generator of the run, and the models are built without dropout); a packed model that drew from it would
still train, but its draws would depend on the other members.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Sequence
from typing import Any

import torch


class Member:
    """One generator of a pack, with its own CPU random state and (on CUDA) its own stream."""

    def __init__(self, steps: Generator[Any, None, Any], device: torch.device, isolate: bool):
        self.steps, self.isolate = steps, isolate
        self.rng = torch.get_rng_state() if isolate else None
        self.stream = torch.cuda.Stream(device) if isolate and device.type == "cuda" else None
        if self.stream is not None:  # the shared data set was uploaded on the current stream
            self.stream.wait_stream(torch.cuda.current_stream(device))

    @contextlib.contextmanager
    def turn(self):
        """Run a stretch of this member: its random state and stream in place, saved again afterwards."""
        if not self.isolate:
            yield
            return
        torch.set_rng_state(self.rng)
        try:
            with torch.cuda.stream(self.stream) if self.stream is not None else contextlib.nullcontext():
                yield
        finally:
            self.rng = torch.get_rng_state()


def interleave(steps: Sequence[Generator[Any, None, Any]], device: torch.device) -> list[Any]:
    """Advance every generator one ``next`` at a time, round robin; return their return values, in order.

    A single generator runs as it would alone (no state is swapped). An exception in any member stops the
    pack and propagates (each training member has saved its last finished epoch and resumes from it).
    """
    members = [Member(s, device, isolate=len(steps) > 1) for s in steps]
    results: list[Any] = [None] * len(members)
    active = list(range(len(members)))
    while active:
        for i in list(active):
            with members[i].turn():
                try:
                    next(members[i].steps)
                except StopIteration as stop:
                    results[i] = stop.value
                    active.remove(i)
    if device.type == "cuda" and len(members) > 1:
        torch.cuda.synchronize(device)
    return results
