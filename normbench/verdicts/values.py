"""Per-run numbers: one number per run for each metric a claim or a reference number names.

:func:`run_value` computes them: the summary metrics of :func:`normbench.runs.folder.summarize`, plus
``gap_fluctuation`` (gap_max - gap_mean), ``train_accuracy``/``test_accuracy`` (100 - final error),
``diverged_epoch``, ``train_time_overhead`` (mean training seconds per epoch, ``steps x step_seconds``, over
a baseline's mean, in %), ``backward_pattern_stable_iteration`` (:func:`stable_iteration`) and the probe
metrics:

- time series, every epoch-schedule probe record within ``epochs``: ``grad_norm_ratio`` (block ratios of the
  selected ``blocks``), ``weight_correlation`` (the pooled ``mean`` per probe), ``error_moment_ratio``
  (``ratio_bottom_to_top`` per probe; the epoch-0 probe at initialisation is left out when later probes
  exist, as the paper omits the first iterations), ``bn_gamma_min`` (each batch-norm layer's smallest
  gamma per probe);
- at the last probe record (the trained model): ``weight_singular_values`` (all layers' singular values),
  ``weight_condition_number`` and ``hidden_condition_number`` (per-layer ``kappa``, within a ``layers``
  window), ``first_layer_activation_range`` (``range`` of the lowest ``layer_index``), ``activation_range``
  (per recorded layer, within ``layers``), ``weight_bulk_abs_bound`` (per recorded layer, the larger of
  ``|q_0.01|`` and ``|q_0.99|`` of its weights: the bound on "most weight values") and
  ``first_infinite_condition_layer`` (1-based index of the first weight layer whose hidden representation
  has an infinite condition number; the number of layers + 1 when none has).

A run's points are reduced to one number by an ``aggregate`` (:func:`reduce_points`; ``docs/references.md``,
"Aggregates"; default ``final`` for time series, ``mean`` otherwise). The claims
(:mod:`normbench.verdicts.claims`) and the reference numbers (:mod:`normbench.verdicts.numbers`, through a
metric's :class:`~normbench.verdicts.metrics.Reduction`) read the same functions.
"""

from __future__ import annotations

import math
from statistics import mean, median, stdev
from typing import Any

from normbench.runs.folder import Run, first_lr_drop, probe_iterations
from normbench.runs.records import as_float

SUMMARY_METRICS = (
    "final_test_error",
    "best_test_error",
    "final_train_error",
    "gap_mean",
    "gap_max",
    "final_test_loss",
    "final_train_loss",
)
LOWER_IS_BETTER = {
    "final_test_error",
    "best_test_error",
    "final_train_error",
    "final_test_loss",
    "final_train_loss",
}
HIGHER_IS_BETTER = {"train_accuracy", "test_accuracy"}
TIME_SERIES_PROBES = {
    "grad_norm_ratio": "grad_norm_ratio",
    "weight_correlation": "weight_correlation",
    "error_moment_ratio": "backward_moments",
    "bn_gamma_min": "bn_gamma",
}
"""The probe each time-series metric reads (every epoch-schedule record)."""
TIME_SERIES = frozenset(TIME_SERIES_PROBES)
END_OF_TRAINING_PROBES = {
    "weight_singular_values": "singular_values",
    "weight_condition_number": "weight_condition",
    "hidden_condition_number": "hidden_condition",
    "first_infinite_condition_layer": "hidden_condition",
    "first_layer_activation_range": "activation_dist",
    "activation_range": "activation_dist",
    "weight_bulk_abs_bound": "weight_dist",
}
"""The probe each end-of-training metric reads (its last epoch-schedule record)."""
END_OF_TRAINING = frozenset(END_OF_TRAINING_PROBES)
PROBE_OF = {
    **END_OF_TRAINING_PROBES,
    **TIME_SERIES_PROBES,
    "backward_pattern_stable_iteration": "backward_moments",
}
"""The probe (``probes.names`` of an experiment) each probe metric is read from."""
METRICS = (
    *SUMMARY_METRICS,
    "gap_fluctuation",
    "train_accuracy",
    "test_accuracy",
    "diverged_epoch",
    "train_time_overhead",
    "backward_pattern_stable_iteration",
    *sorted(TIME_SERIES),
    *sorted(END_OF_TRAINING),
)
"""Every metric a claim may name (the per-run numbers :func:`run_value` computes)."""

STABLE_LOG_TOLERANCE = math.log(2.0)
"""A backward profile is "stable" within a factor 2 of the reference pattern (median over layers): ours."""

AGGREGATES = ("final", "mean", "median", "max", "median_over_layers", "median_abs_log", "spread_log")
BULK_QUANTILES = (0.05, 0.95)
"""``weight_bulk_abs_bound``: "most weight values are between -B and B" read as at least 90 % of them (ours)."""


def _probe_records(run: Run, name: str) -> list[dict[str, Any]]:
    """The epoch-schedule records of probe ``name`` (the claims' epoch windows are in epochs)."""
    return run.probes(name)


def _in_epochs(epoch: Any, epochs: list[int] | None) -> bool:
    return epochs is None or (epochs[0] <= epoch <= epochs[1])


def _select_blocks(blocks: list[dict[str, Any]], which: str) -> list[dict[str, Any]]:
    """``all``, ``transition``, ``non_transition``, ``first_transition`` (the first block, in forward order,
    that changes the dimension), ``stem`` (the transition block named ``stem`` or reading the image, with at
    most 3 input channels: ProcResNet's projected stem) or ``transition_except_stem``."""
    if which == "all":
        return blocks
    if which == "non_transition":
        return [b for b in blocks if not b.get("transition")]
    trans = [b for b in blocks if b.get("transition")]

    def is_stem(b: dict[str, Any]) -> bool:
        return "stem" in str(b.get("name", "")) or (b.get("in_shape") or [99])[0] <= 3

    selections = {
        "transition": trans,
        "first_transition": trans[:1],
        "stem": [b for b in trans if is_stem(b)],
        "transition_except_stem": [b for b in trans if not is_stem(b)],
    }
    if which not in selections:
        raise ValueError(f"unknown blocks selection {which!r}")
    return selections[which]


def layer_window(values: list[Any], layers: list[float] | None) -> list[Any]:
    """The entries of a per-layer list (forward order) whose position ``i / (n - 1)`` lies in ``layers`` =
    ``[lo, hi]`` (fractions of the depth: ``[0, 0.1]`` the first tenth, ``[0.5, 1]`` the later half); all of
    them when ``layers`` is None. A single layer sits at position 0."""
    if layers is None:
        return values
    lo, hi = layers
    n = len(values)
    return [v for i, v in enumerate(values) if lo <= (i / (n - 1) if n > 1 else 0.0) <= hi]


def series_points(
    run: Run,
    metric: str,
    blocks: str = "all",
    epochs: list[int] | None = None,
    layers: list[float] | None = None,
) -> list[list[float]]:
    """The points of a probe metric of one run, one list per probe record used (in epoch order).

    Time series (:data:`TIME_SERIES_PROBES`) give every probe record within ``epochs``; end-of-training
    metrics (:data:`END_OF_TRAINING_PROBES`) give the last probe record only, the per-layer condition
    numbers, activation ranges and weight bounds restricted to the ``layers`` window (:func:`layer_window`).
    Empty when not recorded.
    """
    if metric in TIME_SERIES:
        probe = TIME_SERIES_PROBES[metric]
        recs = [r for r in _probe_records(run, probe) if _in_epochs(r["epoch"], epochs)]
        if metric == "error_moment_ratio" and any(r["epoch"] > 0 for r in recs):
            recs = [r for r in recs if r["epoch"] > 0]  # the paper omits the first iterations
        return [_time_series_points(r["probes"][probe], metric, blocks) for r in recs]
    probe = END_OF_TRAINING_PROBES.get(metric)
    if probe is None:
        raise KeyError(f"{metric!r} is not a probe metric")
    recs = _probe_records(run, probe)
    if not recs or not recs[-1]["probes"][probe]:
        return []
    return [last_record_points(recs[-1]["probes"][probe], metric, layers)]


def _time_series_points(result: Any, metric: str, blocks: str) -> list[float]:
    """The points of a time-series ``metric`` from one probe result."""
    if metric == "grad_norm_ratio":
        return [as_float(b.get("ratio")) for b in _select_blocks(result, blocks)]
    if metric == "bn_gamma_min":  # each BN layer's smallest gamma
        return [as_float(layer.get("min")) for layer in result]
    key = {"weight_correlation": "mean", "error_moment_ratio": "ratio_bottom_to_top"}[metric]
    return [as_float(result.get(key))]


def last_record_points(result: list[dict[str, Any]], metric: str, layers: list[float] | None) -> list[float]:
    """The points of an end-of-training ``metric`` from one probe result (a list of per-layer records)."""
    by_layer = sorted(result, key=lambda layer: layer.get("layer_index") or 0)  # forward order
    if metric == "weight_singular_values":
        return [as_float(v) for layer in result for v in layer.get("singular_values", [])]
    if metric == "first_layer_activation_range":
        return [as_float(by_layer[0].get("range"))]
    if metric == "activation_range":
        return [as_float(layer.get("range")) for layer in layer_window(by_layer, layers)]
    if metric == "weight_bulk_abs_bound":
        return [bulk_abs_bound(layer) for layer in layer_window(by_layer, layers)]
    kappas = [as_float(layer.get("kappa")) for layer in sorted(result, key=lambda r: r.get("index") or 0)]
    if metric == "first_infinite_condition_layer":
        first = next((i for i, k in enumerate(kappas) if k == math.inf), len(kappas))
        return [float(first + 1)]
    return layer_window(kappas, layers)


def bulk_abs_bound(layer: dict[str, Any]) -> float:
    """max(|q_lo|, |q_hi|) of a weight-distribution record, the quantiles :data:`BULK_QUANTILES`: at least
    90 % of the layer's weights lie in [-B, B]. NaN when the record lacks those quantiles."""
    q = layer.get("quantiles") or {}
    at = dict(zip([round(float(x), 6) for x in q.get("q", [])], q.get("values", [])))
    lo, hi = (at.get(round(x, 6)) for x in BULK_QUANTILES)
    if lo is None or hi is None:
        return math.nan
    return max(abs(as_float(lo)), abs(as_float(hi)))


def backward_profiles(run: Run) -> list[tuple[int, list[float]]]:
    """``(iteration, log(q^l / q^L) per layer)`` of every ``backward_moments`` record of ``run`` up to its first
    learning-rate drop, in iteration order (:func:`~normbench.runs.folder.probe_iterations`,
    :func:`~normbench.runs.folder.first_lr_drop`). Records whose iteration is unknown, or with a non-positive
    moment, are left out."""
    drop = first_lr_drop(run)
    out = []
    for _, it, res in probe_iterations(run, "backward_moments"):
        q = [as_float(v) for v in res.get("q", [])]
        if it is None or (drop is not None and it > drop) or not q or min(q) <= 0:
            continue
        out.append((it, [math.log(v / q[-1]) for v in q]))
    return sorted(out)


def stable_iteration(run: Run, tolerance: float = STABLE_LOG_TOLERANCE) -> float:
    """Xie Fig. 4's "About after 2000 to 3000 iterations, the ratio trend to converge to a certain of stable
    evolution pattern shown in the 20000th and 30000th iterations": the first recorded iteration t after which
    every profile (up to the first learning-rate drop) is within ``tolerance`` of the reference pattern, the
    last profile before that drop: median over layers of |log(q_t^l/q_t^L) - log(q_ref^l/q_ref^L)| <=
    ``tolerance`` (log 2, ours). NaN with fewer than three profiles (nothing to call stable)."""
    profiles = backward_profiles(run)
    if len(profiles) < 3:
        return math.nan
    ref = profiles[-1][1]
    first = profiles[-1][0]
    for it, prof in reversed(profiles):
        if len(prof) != len(ref) or median(abs(a - b) for a, b in zip(prof, ref)) > tolerance:
            break
        first = it
    return float(first)


def reduce_points(points: list[list[float]], aggregate: str) -> float:
    """One number from a run's points (see ``docs/references.md``, "Aggregates"); NaN points are dropped."""
    if aggregate not in AGGREGATES:
        raise ValueError(f"unknown aggregate {aggregate!r}; valid: {', '.join(AGGREGATES)}")
    if aggregate == "final":
        points = points[-1:]
    flat = [v for p in points for v in p if not math.isnan(v)]
    if not flat:
        return math.nan
    if aggregate in ("final", "mean"):
        return mean(flat) if all(math.isfinite(v) for v in flat) else _inf_mean(flat)
    if aggregate in ("median", "median_over_layers"):
        return median(flat)
    if aggregate == "max":
        return max(flat)
    logs = [abs(math.log(v)) if v > 0 else math.inf for v in flat]
    if aggregate == "median_abs_log":
        return median(logs)
    signed = [math.log(v) if v > 0 else -math.inf for v in flat]
    if len(signed) < 2:
        return math.nan
    return stdev(signed) if all(math.isfinite(v) for v in signed) else math.inf


def _inf_mean(vals: list[float]) -> float:
    s = sum(vals)
    return s if not math.isnan(s) else math.nan


def train_seconds(run: Run) -> float:
    """Mean training seconds per epoch: ``steps x step_seconds`` (no evaluation), else ``seconds``."""
    per = []
    for r in run.records:
        if r.get("kind") != "epoch":
            continue
        if "step_seconds" in r and "steps" in r:
            per.append(r["step_seconds"] * r["steps"])
        elif "seconds" in r:
            per.append(r["seconds"])
    return mean(per) if per else math.nan


def run_value(
    run: Run,
    metric: str,
    aggregate: str | None = None,
    blocks: str = "all",
    epochs: list[int] | None = None,
    baseline_seconds: float | None = None,
    layers: list[float] | None = None,
) -> float:
    """One number per run for ``metric`` (NaN when the run diverged before it or did not record it)."""
    s = run.summary
    if metric in SUMMARY_METRICS:
        return as_float(s.get(metric))
    if metric == "gap_fluctuation":
        return as_float(s.get("gap_max")) - as_float(s.get("gap_mean"))
    if metric == "train_accuracy":
        return 100.0 - as_float(s.get("final_train_error"))
    if metric == "test_accuracy":
        return 100.0 - as_float(s.get("final_test_error"))
    if metric == "diverged_epoch":
        return as_float(s.get("diverged_epoch"))
    if metric == "backward_pattern_stable_iteration":
        return stable_iteration(run)
    if metric == "train_time_overhead":
        if not baseline_seconds or not math.isfinite(baseline_seconds):
            return math.nan
        return 100.0 * (train_seconds(run) / baseline_seconds - 1.0)
    if metric in TIME_SERIES or metric in END_OF_TRAINING:
        agg = aggregate or ("final" if metric in TIME_SERIES else "mean")
        return reduce_points(series_points(run, metric, blocks, epochs, layers), agg)
    raise KeyError(f"unknown metric {metric!r}; valid: {', '.join(METRICS)}")
