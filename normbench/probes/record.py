"""``record_probes``: run named probes on a model and one batch, return one JSON-safe dict.

The trainer appends the result to the run's metrics log as ``{"kind": "probe", ...}``. Probe names:

=====================  =================================================  ==========================
name                   function                                           paper / figure
=====================  =================================================  ==========================
grad_norm_ratio        :func:`~.gradients.block_grad_norm_ratios`          Zaeemzadeh Fig. 3
backward_moments       :func:`~.gradients.backward_error_moments`          Xie Figs. 3-4
singular_values        :func:`~.spectra.weight_singular_values`            Jia Fig. 1 (all layers)
sv_histograms          :func:`~.spectra.singular_value_histograms`         Jia Fig. 1 (3 layers)
weight_condition       :func:`~.conditioning.weight_condition_numbers`     Oyedotun Figs. 11-12
hidden_condition       :func:`~.conditioning.hidden_condition_numbers`     Oyedotun Fig. 13
activation_dist        :func:`~.distributions.activation_distributions`    Oyedotun Figs. 5, 7, 9
weight_dist            :func:`~.distributions.weight_distributions`        Oyedotun Figs. 6, 8, 10
weight_correlation     :func:`~.correlation.weight_correlation`            Xie Fig. 2, Eq. 8
relu_nonzero           :func:`~.distributions.relu_nonzero`                Xie footnote 3
bn_gamma               :func:`~.distributions.bn_gammas`                   Jia Sec. 5 (Algorithm 2)
=====================  =================================================  ==========================
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn

from normbench.probes.conditioning import hidden_condition_numbers, weight_condition_numbers
from normbench.probes.correlation import weight_correlation
from normbench.probes.distributions import (
    activation_distributions,
    bn_gammas,
    relu_nonzero,
    weight_distributions,
)
from normbench.probes.gradients import backward_error_moments, block_grad_norm_ratios
from normbench.probes.spectra import singular_value_histograms, weight_singular_values
from normbench.runs.records import json_safe

ProbeFn = Callable[..., Any]

# name -> (function, needs the batch)
PROBES: dict[str, tuple[ProbeFn, bool]] = {
    "grad_norm_ratio": (block_grad_norm_ratios, True),
    "backward_moments": (backward_error_moments, True),
    "singular_values": (weight_singular_values, False),
    "sv_histograms": (singular_value_histograms, False),
    "weight_condition": (weight_condition_numbers, False),
    "hidden_condition": (hidden_condition_numbers, True),
    "activation_dist": (activation_distributions, True),
    "weight_dist": (weight_distributions, False),
    "weight_correlation": (weight_correlation, False),
    "relu_nonzero": (relu_nonzero, True),
    "bn_gamma": (bn_gammas, False),
}


def record_probes(
    model: nn.Module,
    batch: Any,
    which: Sequence[str],
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run the probes named in ``which`` (see the table in the module docstring) and return one
    JSON-safe dict ``{"probes": {name: result}, "seconds": {name: wall time}}``.

    ``batch`` is ``(x, y)`` (``x`` alone suffices when no gradient probe is asked for); ``options[name]``
    holds keyword arguments for that probe (e.g. ``{"grad_norm_ratio": {"blocks": [...]}}``). Non-finite
    floats are written as the strings ``"inf"``, ``"-inf"``, ``"nan"`` (:func:`json_safe`); read them back
    with :func:`normbench.probes.from_json_safe`. Unknown names raise ``ValueError`` before anything runs.
    The model is left as it was: same mode, buffers, RNG state and parameter gradients.
    """
    unknown = [w for w in which if w not in PROBES]
    if unknown:
        raise ValueError(f"unknown probe(s) {unknown}; valid probes are: {', '.join(PROBES)}")
    options = options or {}
    results: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    for name in which:
        fn, needs_batch = PROBES[name]
        kwargs = dict(options.get(name, {}))
        t0 = time.perf_counter()
        results[name] = fn(model, batch, **kwargs) if needs_batch else fn(model, **kwargs)
        seconds[name] = time.perf_counter() - t0
    return json_safe({"probes": results, "seconds": seconds})
