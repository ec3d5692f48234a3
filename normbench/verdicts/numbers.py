"""Paper vs ours: one row per reference number, with the tolerance rule and a verdict.

Verdicts, checked in this order:

- ``NOT RUN``: no run of this configuration reproduces the reference's table with its model and method.
- ``PROXY``: runs exist but their protocol differs from the paper's (data set, epochs, or fewer seeds than the
  paper's runs). Ours, the delta and the interval are shown for information, never called a reproduction.
- Otherwise REPRODUCED, DEVIATES or INCONCLUSIVE by the rule below (:func:`decide`).

The rule. Our runs give an estimate ``ours`` of the statistic the paper printed (see *Like with like*) and its
standard error ``SE``; with ``d = ours - paper``, ``u = k * SE`` (``k = 2``, about a 95% interval) and the
metric's absolute floor ``f`` (:data:`TOLERANCE`, also the ``tolerance`` column):

- ``REPRODUCED`` when ``|d| <= f`` and ``u <= f``: our estimate agrees within the floor, and it is precise
  enough for that to mean something (our interval is no wider than the band ``[-f, f]``).
- ``DEVIATES`` when ``|d| - u > f``: even the end of our interval nearest to the paper differs by more than the
  floor, i.e. the interval ``[d - u, d + u]`` lies entirely outside the band.
- ``INCONCLUSIVE`` otherwise, and with fewer than 2 runs (no spread can be estimated): the interval reaches
  into the band but is wider than it (``u > f``: the spread covers both outcomes), or our estimate lies just
  outside the band but its interval still reaches in. The row says about how many runs would decide it,
  assuming the spread stays (``runs_to_decide``: ``u`` shrinks as ``1/sqrt(n)``).

Why this rule, and not the simpler ones:

- ``|d| <= max(f, k*SE)`` (this module's earlier rule) lets the tolerance grow with our spread, so a noisy run
  (large s, few seeds) was called REPRODUCED *because* it was noisy. Here a wide interval gives INCONCLUSIVE.
- ``[d - u, d + u]`` inside ``[-f, f]`` (a textbook equivalence test, TOST) would be symmetric, but the paper's
  number is itself noisy (a mean of a few runs, or one run), and we do not know its spread. The floor is set
  to absorb that: about twice the seed-to-seed std of the metric (0.5 pp for errors, where CIFAR seeds differ
  by 0.1-0.3 pp, while papers print 0.01 pp). Asking our interval to fit inside the band as well would count
  that noise twice and turn most faithful runs INCONCLUSIVE. So the point estimate decides REPRODUCED, and our
  precision only has to match the band's scale.
- A DEVIATES verdict is an accusation (and fails ``--strict``): it needs evidence, the whole interval outside
  the band, not a point estimate just past the edge. Hence the asymmetry: an estimate at ``f + u/2`` is
  INCONCLUSIVE, one at ``f - u/2`` REPRODUCED.

One-sided references (``upper_bound``: ours <= paper, ``lower_bound``: ours >= paper) use the signed excess
``e = d`` (resp. ``-d``) in place of ``|d|``; they are also REPRODUCED when the whole interval satisfies the
bound (``e + u <= f``). A paper value given as "about" x widens the floor to ``max(f, 10% of x)``.

Like with like (``estimator``, ``ours``, ``ours_se``):

- ``mean``, ``unstated``, ``single``: our mean over our n runs, ``SE = s / sqrt(n)`` (``s`` the sample std).
- ``best`` of n (lowest error, highest accuracy): with our m runs equal to the paper's n, our best of m. With
  m != n, the expected best of n over our runs, ``Boo_n`` (Bajgar, Kadlec, Kleindienst, "A Boo(n) for
  Evaluating Architecture Performance", ICML 2018): the mean, over resamples of n of our m runs drawn with
  replacement, of the best of the resample. :func:`best_of_n` computes it exactly, as the limit of infinitely
  many resamples (the i-th best of m is the best of the resample with probability ``((m-i+1)/m)^n -
  ((m-i)/m)^n``), so it needs no random numbers; it also gives the std of that bootstrap distribution of
  best-of-n draws (``best_of_n_std``): how much one best of n, such as the paper's, varies.
- ``max``, ``median``: the same statistic over our runs.
- ``best``, ``max``, ``median``: ``SE`` is the std of the estimator over :data:`BOOTSTRAP_RESAMPLES` bootstrap
  resamples (m of our m runs, with replacement, fixed seed :data:`BOOTSTRAP_SEED`, so the comparison is
  deterministic); for the best of m with m = n it is the ``best_of_n_std`` above, computed exactly.
- ``std``: our sample std, ``SE = s / sqrt(2 (n - 1))`` (normal approximation).

Numbers relative to a baseline (:func:`compare_relative`): an accuracy gain uses ``SE = sqrt(s_a^2/n_a +
s_b^2/n_b)`` and the same rule; a time overhead is a point decision against its floor (one run per side is
enough, and the device, not the seed, dominates its spread). Model quantities (parameter counts, depths) are
deterministic: no runs, no interval.

A reference printed '-' in the paper (``value: null``, e.g. Plain-164 in Zaeemzadeh Table 1, which diverges)
is REPRODUCED when all our runs diverge too, DEVIATES when any converges.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from statistics import mean, stdev
from typing import Any

import numpy as np
import pandas as pd
from tabulate import tabulate

from normbench.references import Reference
from normbench.runs.folder import DATASET_SHAPES, Run
from normbench.verdicts import (
    DEVIATES,
    INCONCLUSIVE,
    NOT_EVALUATED,
    NOT_RUN,
    PROXY,
    REPRODUCED,
    VERDICTS,
    Verdict,
    chi2_sd_interval,
    count_runs,
    metric_info,
    t_quantile,
)
from normbench.verdicts.accounting import finished_runs
from normbench.verdicts.formatting import mean_std, number
from normbench.verdicts.metrics import METRIC_TABLE, STRUCTURE
from normbench.verdicts.metrics import NOT_EVALUATED as UNCOMPUTED
from normbench.verdicts.metrics import RELATIVE as RELATIVE_KIND
from normbench.verdicts.protocol import protocol_differences as check_protocol
from normbench.verdicts.statistics import CONFIDENCE, finite_values, sample_stats, welch_df
from normbench.verdicts.values import PROBE_OF, run_value

SD_RATIO_BAND = 2.0
"""A std row agrees when ours / paper lies in [1/2, 2] (compared on the log scale)."""
SPREAD_RULE = (
    f"spread: REPRODUCED when the {CONFIDENCE:.0%} chi-square interval of ours/paper lies in "
    f"[1/{SD_RATIO_BAND:g}, {SD_RATIO_BAND:g}]; DEVIATES when it lies wholly outside"
)
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class Tolerance:
    floor: float
    higher_is_better: bool = False

    def rule(self, floor: float | None = None) -> str:
        f = f"{self.floor if floor is None else floor:g}"
        return f"REPRODUCED: |Δ| ≤ {f} and t·SE ≤ {f}; DEVIATES: |Δ| − t·SE > {f} (t: Student, n − 1 df)"


TOLERANCE: dict[str, Tolerance] = {
    name: Tolerance(m.floor, m.higher_is_better) for name, m in METRIC_TABLE.items() if m.floor is not None
}
"""Floors of the metrics that have one (:data:`normbench.verdicts.METRIC_TABLE`); there is no default."""
ABOUT = 0.1  # a number the paper gives as "about" x: the floor widens to 10% of x
PARAMS_REL = 0.01  # parameter counts: within 1%, or rounding to the printed figure (as tests/test_models.py)
COUNT_METRICS = frozenset({"depth", "residual_blocks", "transition_blocks", "modified_blocks"})


def decide(d: float, half_width: float, floor: float, n: int, qualifier: str = "exact") -> Verdict:
    """The verdict of an estimate ``d = ours - paper`` with interval ``d ± half_width`` against the band
    ``[-floor, floor]`` (module docstring): REPRODUCED, DEVIATES or INCONCLUSIVE. ``n`` is our number of runs.
    """
    if n < 2 or not (math.isfinite(d) and math.isfinite(half_width)):
        return INCONCLUSIVE
    excess = d if qualifier == "upper_bound" else -d if qualifier == "lower_bound" else abs(d)
    if excess - half_width > floor:
        return DEVIATES
    if (excess <= floor and half_width <= floor) or excess + half_width <= floor:
        return REPRODUCED
    return INCONCLUSIVE


def runs_to_decide(d: float, half_width: float, floor: float, n: int, qualifier: str = "exact") -> int | None:
    """About how many runs would turn an INCONCLUSIVE verdict into another, if our estimate and spread stay:
    the n at which ``half_width * sqrt(n_now / n)`` falls to the floor (estimate inside the band) or below the
    estimate's distance past it (outside). ``None`` when fewer than 2 runs give no spread to extrapolate."""
    if n < 2 or not (math.isfinite(d) and math.isfinite(half_width)) or half_width <= 0:
        return None
    excess = d if qualifier == "upper_bound" else -d if qualifier == "lower_bound" else abs(d)
    gap = floor if excess <= floor else excess - floor
    if gap <= 0:
        return None
    return max(n + 1, math.ceil(n * (half_width / gap) ** 2))


def best_of_n(values: list[float], n: int, higher_is_better: bool = False) -> tuple[float, float]:
    """(mean, std) of the best of ``n`` draws with replacement from ``values``: ``Boo_n`` and its spread.

    Exact, the limit of the bootstrap over infinitely many resamples: sorted best first, the i-th value
    (1-based) of m is the best of a resample when all n draws fall among the values from the i-th on but not
    all from the (i+1)-th on, with probability ``((m-i+1)/m)^n - ((m-i)/m)^n``.
    """
    xs = np.sort(np.asarray(values, dtype=float))
    if higher_is_better:
        xs = xs[::-1]
    w = _best_weights(len(xs), n)
    m1 = float(w @ xs)
    var = float(w @ (xs - m1) ** 2)
    return m1, math.sqrt(max(var, 0.0))


def _best_weights(m: int, n: int) -> np.ndarray:
    rest = (m - np.arange(m, dtype=float)) / m  # share of values from the i-th (0-based) best on
    return rest**n - np.append(rest[1:], 0.0) ** n


def _bootstrap_se(values: list[float], estimator: Any) -> float:
    """Std of ``estimator`` over resamples of len(values) of ``values`` with replacement (fixed seed)."""
    xs = np.asarray(values, dtype=float)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    samples = xs[rng.integers(0, len(xs), size=(BOOTSTRAP_RESAMPLES, len(xs)))]
    return float(np.std(estimator(samples), ddof=1))


@dataclass(frozen=True)
class Estimate:
    """Our runs summarised the way the paper summarised its runs, with the standard error of that summary."""

    value: float
    se: float
    estimator: str
    best_of_n_std: float = float("nan")


def estimate(values: list[float], statistic: str, tol: Tolerance, paper_runs: int | None = None) -> Estimate:
    """Our estimate of the paper's ``statistic`` from our per-run ``values`` (finite ones), see the module
    docstring (*Like with like*) and docs/references.md (statistics)."""
    m = len(values)
    nan = float("nan")
    if not values:
        return Estimate(nan, nan, "no finished run")
    if statistic in ("mean", "single", "unstated"):
        se = stdev(values) / math.sqrt(m) if m > 1 else nan
        return Estimate(mean(values), se, f"mean of {m}")
    if statistic == "std":
        if m < 2:
            return Estimate(nan, nan, "std of 1")
        s = stdev(values)
        return Estimate(s, s / math.sqrt(2 * (m - 1)), f"std of {m}")
    if statistic == "best":
        n = paper_runs or m
        boo, spread = best_of_n(values, n, tol.higher_is_better)
        if m < 2:
            return Estimate(values[0], nan, "best of 1")
        if n == m:  # our best of n; its standard error is the spread of one best of n, exactly
            return Estimate(
                max(values) if tol.higher_is_better else min(values), spread, f"best of {m}", spread
            )
        sign = -1.0 if tol.higher_is_better else 1.0
        w = _best_weights(m, n)
        se = _bootstrap_se(values, lambda s: (np.sort(sign * s, axis=1) * sign) @ w)
        return Estimate(boo, se, f"Boo_{n}, expected best of {n} from {m} runs", spread)
    if statistic in ("max", "median"):
        fn = np.max if statistic == "max" else np.median
        se = _bootstrap_se(values, lambda s: fn(s, axis=1)) if m > 1 else nan
        return Estimate(float(fn(values)), se, f"{statistic} of {m}")
    raise ValueError(f"unknown statistic {statistic!r}")


def per_run_value(run: Run, metric: str) -> float:
    """One run's number for ``metric``: its :class:`~normbench.verdicts.metrics.Reduction` of the probe
    records where the metric has one (:func:`normbench.verdicts.values.run_value`, as the claims), else the
    run summary's value."""
    red = metric_info(metric).reduction
    if red is None:
        return run.summary.get(metric, float("nan"))
    epochs = list(red.epochs) if red.epochs else None
    return run_value(run, red.metric, red.aggregate, red.blocks, epochs)


def log10_values(values: list[float]) -> tuple[list[float], int]:
    """(log10 of the positive values, how many were zero or negative: they have no logarithm)."""
    return [math.log10(v) for v in values if v > 0], sum(v <= 0 for v in values)


LOG_RULE = "on the log10 scale, Δ = log10(ours / paper) in decades"


def _nonpositive_verdict(row: dict[str, Any], bad: int, n: int) -> Verdict:
    """A log-scale row with zero or negative values: DEVIATES when every one of at least 2 runs has one (the
    paper's value is positive), else INCONCLUSIVE; the rule says so."""
    row["rule"] += f"; {bad} of {n} runs ≤ 0 (no logarithm)"
    return DEVIATES if bad == n >= 2 else INCONCLUSIVE


def protocol_differences(ref: Reference, runs: list[Run]) -> list[str]:
    """How our runs' protocol differs from the paper's (empty when it matches): the one protocol check of
    :func:`normbench.verdicts.protocol.protocol_differences`."""
    return check_protocol(
        runs, dataset=ref.dataset, epochs=ref.epochs, runs_wanted=ref.runs, recipe=ref.recipe
    )


def run_matches(
    run: Run,
    table_key: str,
    model: str | None,
    method: str = "none",
    options: dict[str, Any] | None = None,
    optimizer: str | None = None,
    dataset: str | None = None,
) -> bool:
    """Does ``run`` stand for this subject of a paper table?

    The run's experiment must reproduce ``table_key`` (``<paper>/<table>``), with the same model and method,
    the same method configuration (options with the method's defaults filled in on both sides, so the
    "always" modulation runs are not pooled with the default ones), the optimizer where one is named, and the
    paper data set (``paper_dataset``: a proxy run on digits stands for its experiment's data set) where one
    is named.
    """
    from normbench.methods import UnknownMethodError, effective_options

    cfg = run.config
    if table_key not in cfg.get("reproduces", []) or cfg["model"] != model or cfg["method"] != method:
        return False
    try:
        if effective_options(method, cfg.get("method_options")) != effective_options(method, options):
            return False
    except UnknownMethodError:
        return False
    if optimizer is not None and cfg["optimizer"]["name"] != optimizer:
        return False
    return dataset is None or cfg.get("paper_dataset", cfg["dataset"]) == dataset


def matching_runs(ref: Reference, runs: list[Run]) -> list[Run]:
    return [
        r
        for r in runs
        if run_matches(r, ref.table_key, ref.model, ref.method, ref.options, ref.optimizer, ref.dataset)
    ]


@functools.lru_cache(maxsize=16)
def _built(name: str, dataset: str) -> Any:
    """The registry's model ``name`` for ``dataset``'s classes and channels, built once per process on the
    meta device (shapes only, no memory: an ImageNet network is not allocated to count its parameters)."""
    import torch

    from normbench.models import build_model

    classes, channels = DATASET_SHAPES.get(dataset, DATASET_SHAPES["cifar10"])
    with torch.device("meta"):
        return build_model(name, num_classes=classes, in_channels=channels)


def block_signatures(model: Any) -> list[tuple[str, tuple[tuple[str, tuple[int, ...]], ...]]]:
    """Per block of ``model.blocks`` (:func:`normbench.probes.gradients.find_blocks`): its class and the
    names and shapes of its parameters. Two blocks with equal signatures compute the same kind of map."""
    from normbench.probes.gradients import find_blocks

    return [
        (type(b).__name__, tuple((n, tuple(p.shape)) for n, p in b.named_parameters()))
        for _, b in find_blocks(model)
    ]


def model_metric(ref: Reference) -> float | None:
    """Quantities of the architecture itself (no runs), from the registry's model: parameter count
    (millions), depth, residual blocks (``len(model.blocks)``), transition blocks (their ``transition``
    flag), and against ``ref.baseline``'s model: blocks at the same position that differ (class or parameter
    shapes, plus any extra blocks), the parameter increase (%) and the reduction factor."""
    from normbench.models import MODELS, count_params
    from normbench.probes.gradients import find_blocks

    info = MODELS.get(ref.model or "")
    if info is None:
        return None
    if ref.metric == "depth":
        return float(info.depth)
    model = _built(info.name, ref.dataset or "")
    if ref.metric == "params":
        return count_params(model) / 1e6
    if ref.metric == "residual_blocks":
        return float(len(find_blocks(model)))
    if ref.metric == "transition_blocks":
        return float(sum(bool(getattr(b, "transition", False)) for _, b in find_blocks(model)))
    base_name = (ref.baseline or {}).get("model")
    if base_name not in MODELS:
        return None
    base = _built(base_name, ref.dataset or "")
    if ref.metric == "modified_blocks":
        mine, theirs = block_signatures(model), block_signatures(base)
        return float(sum(a != b for a, b in zip(mine, theirs)) + abs(len(mine) - len(theirs)))
    if ref.metric == "params_increase":
        return 100.0 * (count_params(model) / count_params(base) - 1.0)
    if ref.metric == "params_reduction_factor":
        return count_params(base) / count_params(model)
    return None


def model_note(ref: Reference) -> str:
    """The registry's explanation of a parameter-count difference of ``ref``'s model (``params_note``)."""
    from normbench.models import MODELS

    info = MODELS.get(ref.model or "")
    return " ".join(info.params_note.split()) if info is not None and ref.metric == "params" else ""


def not_run_row(ref: Reference) -> dict[str, Any]:
    """The comparison row of a reference before any run is matched to it: verdict NOT RUN."""
    return _row(ref, TOLERANCE.get(ref.metric))


def _row(ref: Reference, tol: Tolerance | None) -> dict[str, Any]:
    nan = float("nan")
    info = metric_info(ref.metric)
    return {
        "id": ref.id,
        "paper": ref.paper,
        "table": ref.label,
        "row": ref.row,
        "column": ref.column,
        "model": ref.model,
        "method": ref.method,
        "metric": ref.metric,
        "units": ref.units,
        "statistic": ref.statistic,
        "kind": "structure" if info.kind == STRUCTURE else "trained",  # structure rows never count as results
        "scale": "log10" if info.log else "linear",  # the scale of delta and tolerance
        "paper_value": ref.value,
        "missing": ref.missing,  # why the paper prints no value ('diverged': training diverged)
        "paper_runs": ref.runs,
        "ours": nan,  # our estimate of the paper's statistic (``estimator``)
        "ours_mean": nan,
        "ours_std": nan,
        "n": 0,  # runs in our estimate (finished)
        "runs": 0,  # every matched run
        "diverged": 0,
        "incomplete": 0,  # logs that stop before the configured epochs: excluded
        "damaged": 0,  # logs that cannot be read: excluded
        "delta": nan,  # ours - paper
        "tolerance": nan,  # the floor f: the band [-f, f] around the paper's value
        "rule": SPREAD_RULE if ref.statistic == "std" else tol.rule() if tol is not None else info.how,
        "verdict": NOT_RUN,
        "protocol_differences": "",
        "estimator": "",
        "ours_se": nan,  # standard error of ``ours``
        "t": nan,  # the Student-t quantile of the interval (95 %, its degrees of freedom)
        "half_width": nan,  # t * ours_se: the interval is delta ± half_width
        "delta_low": nan,
        "delta_high": nan,
        "best_of_n_std": nan,  # statistic best: spread of one best-of-n draw (bootstrap)
        "runs_to_decide": None,  # INCONCLUSIVE: about how many runs would decide, if the spread stays
    }


def _within(ours: float, ref: Reference, tolerance: float) -> bool:
    """The qualifier decides the direction: exact and about are two-sided, bounds one-sided."""
    if ref.qualifier == "upper_bound":
        return ours <= ref.value + tolerance
    if ref.qualifier == "lower_bound":
        return ours >= ref.value - tolerance
    return abs(ours - ref.value) <= tolerance


def _set_interval(
    row: dict[str, Any], ref: Reference, d: float, se: float, floor: float, n: int, df: float | None = None
) -> str:
    """Fill the interval columns of ``row`` and return the verdict of :func:`decide`: the interval is
    ``d ± t·SE`` with ``t`` the 95 % Student quantile at ``df`` degrees of freedom (default ``n - 1``)."""
    t = t_quantile(n - 1 if df is None else df)
    u = t * se
    verdict = decide(d, u, floor, n, ref.qualifier)
    row.update(
        delta=d,
        tolerance=floor,
        ours_se=se,
        t=t,
        half_width=u,
        delta_low=d - u,
        delta_high=d + u,
        runs_to_decide=runs_to_decide(d, u, floor, n, ref.qualifier) if verdict == INCONCLUSIVE else None,
    )
    return verdict


def compare_model_metric(ref: Reference, row: dict[str, Any]) -> dict[str, Any]:
    """Parameter counts, depths and block counts: deterministic numbers of the registry's model
    (:func:`model_metric`), no runs and no interval."""
    from normbench.models import MODELS

    ours = model_metric(ref)
    if ours is None:
        row["rule"] = (
            "a cited architecture the suite does not build (no registry model): not checked"
            if ref.model is None
            else f"{ref.model!r} is not in the model registry"
            if ref.model not in MODELS
            else f"the baseline {ref.baseline} is not in the model registry"
        )
        return row
    tolerance = ABOUT * abs(ref.value) if ref.qualifier == "about" else 0.0
    rule = "|Δ| ≤ 10% (the paper says 'about')" if ref.qualifier == "about" else "Δ = 0"
    if ref.qualifier in ("upper_bound", "lower_bound"):
        rule = f"ours {'≤' if ref.qualifier == 'upper_bound' else '≥'} paper"
    if ref.metric == "params":
        decimals = len(repr(float(ref.value)).split(".")[1].rstrip("0"))
        tolerance = max(PARAMS_REL * abs(ref.value), 0.5 * 10.0**-decimals)
        rule = "rounds to the printed count, or |Δ| ≤ 1%"
    row.update(
        ours=ours,
        ours_mean=ours,
        delta=ours - ref.value,
        tolerance=tolerance,
        n=1,
        estimator="the registry's model",
        runs=0,
        rule=rule,
        verdict=REPRODUCED if _within(ours, ref, tolerance) else DEVIATES,
    )
    note = model_note(ref) if row["verdict"] == DEVIATES else ""
    if note:  # a known, explained difference of the architecture: the row says why
        row["rule"] += f"; the registry explains: {note}"
    return row


def compare_one(ref: Reference, runs: list[Run]) -> dict[str, Any]:
    """One reference number against the runs that stand for it (see the module docstring for the verdicts)."""
    info = metric_info(ref.metric)
    tol = TOLERANCE.get(ref.metric)
    row = _row(ref, tol)
    if ref.config_only:
        row["rule"] = "configuration only (needs the user's ImageNet)"
        return row
    if ref.value is None and ref.missing != "diverged":
        row["rule"] = f"no paper value ({ref.missing}: {ref.note})"
        return row
    if info.kind == STRUCTURE:
        return compare_model_metric(ref, row)
    if not runs:
        return row
    if info.kind == UNCOMPUTED:
        row.update(verdict=NOT_EVALUATED, rule=f"{len(runs)} runs matched; {info.how}", runs=len(runs))
        return row
    counts = count_runs(runs)
    finished = finished_runs(runs)
    diffs = protocol_differences(ref, runs)
    row.update(
        runs=counts.total,
        diverged=counts.diverged,
        incomplete=counts.incomplete,
        damaged=counts.damaged,
        protocol_differences="; ".join(diffs),
    )
    if ref.value is None:  # printed '-' because training diverged
        row["rule"] = "all runs diverge"
        done = counts.finished + counts.diverged
        if done == 0:
            verdict = INCONCLUSIVE
        else:
            verdict = REPRODUCED if counts.diverged == done else DEVIATES
        row["n"] = done
    else:
        values = [per_run_value(r, ref.metric) for r in finished]
        m, s, n = sample_stats(values)
        finite = finite_values(values)
        row.update(ours_mean=m, ours_std=s, n=n)
        if ref.statistic == "std":
            verdict = _judge_spread(row, ref, finite)
        elif info.log:
            verdict = _judge_log_estimate(row, ref, tol, finite)
        else:
            verdict = _judge_estimate(row, ref, tol, finite)
        verdict = _with_diverged(row, verdict, counts.diverged, n)
        if info.reduction is not None and finished and not n:
            probe = PROBE_OF[info.reduction.metric]
            row["rule"] += f"; no finished run has a value: does the experiment record the {probe!r} probe?"
    if counts.incomplete:
        row["rule"] += (
            f"; {counts.incomplete} incomplete run(s) excluded (log stops before the configured epochs)"
        )
    if counts.damaged:
        row["rule"] += f"; {counts.damaged} damaged run(s) excluded (log unreadable: see the compare log)"
    row["verdict"] = PROXY if diffs else verdict
    if diffs or row["verdict"] != INCONCLUSIVE:
        row["runs_to_decide"] = None
    return row


def _one_sided(ref: Reference, log: bool = False) -> str:
    """The start of a bound's rule, naming the signed excess that stands for |Δ| (empty for a two-sided
    number): ours above the paper for an ``upper_bound``, below it for a ``lower_bound``."""
    if ref.qualifier not in ("upper_bound", "lower_bound"):
        return ""
    upper = ref.qualifier == "upper_bound"
    if log:
        excess = "log10(ours / paper)" if upper else "log10(paper / ours)"
    else:
        excess = "ours − paper" if upper else "paper − ours"
    return f"one-sided, {excess} for Δ: "


def _judge_estimate(row: dict[str, Any], ref: Reference, tol: Tolerance, finite: list[float]) -> Verdict:
    """The paper's mean, best of n, max or median against our estimate of it (module docstring)."""
    est = estimate(finite, ref.statistic, tol, ref.runs)
    floor = tol.floor
    if ref.qualifier == "about":
        floor = max(floor, ABOUT * abs(ref.value))
        row["rule"] = f"{tol.rule(floor)} (floor max({tol.floor:g}, 10%): the paper says 'about')"
    elif ref.qualifier in ("upper_bound", "lower_bound"):
        row["rule"] = f"{_one_sided(ref)}{tol.rule()}"
    row.update(ours=est.value, estimator=est.estimator, best_of_n_std=est.best_of_n_std)
    return _set_interval(row, ref, est.value - ref.value, est.se, floor, len(finite))


def _judge_log_estimate(row: dict[str, Any], ref: Reference, tol: Tolerance, finite: list[float]) -> Verdict:
    """A metric judged on the log10 scale (:class:`~normbench.verdicts.metrics.Metric` ``log``): our
    estimate of the paper's statistic over the runs' log10 values (for a mean: the geometric mean) against
    log10 of the paper's value, with the floor in decades. "About" does not widen it: the floor is already a
    factor, chosen for numbers read off figures or stated as "about"."""
    row["rule"] = f"{_one_sided(ref, log=True)}{LOG_RULE}: {tol.rule()} (a factor {10**tol.floor:.3g})"
    logs, bad = log10_values(finite)
    if bad:
        return _nonpositive_verdict(row, bad, len(finite))
    if not logs or ref.value <= 0:
        return INCONCLUSIVE
    est = estimate(logs, ref.statistic, tol, ref.runs)
    geometric = (
        f"geometric {est.estimator}" if est.estimator.startswith("mean") else f"{est.estimator}, log10"
    )
    row.update(ours=10**est.value, estimator=geometric)
    return _set_interval(row, ref, est.value - math.log10(ref.value), est.se, tol.floor, len(logs))


def _judge_spread(row: dict[str, Any], ref: Reference, finite: list[float]) -> Verdict:
    """A std row, judged as a spread: the ratio r = ours / paper on the log scale against the band
    ``[1/B, B]`` (:data:`SD_RATIO_BAND`), with the 95 % chi-square interval of our sigma. REPRODUCED when
    the interval of r lies inside the band, DEVIATES when it lies wholly outside, else INCONCLUSIVE. A zero
    spread over two or more runs (the seeds had no effect) is flagged and DEVIATES from any positive paper
    value."""
    n = len(finite)
    band = SD_RATIO_BAND
    row["rule"] = SPREAD_RULE
    if n < 2:
        row["estimator"] = f"std of {n}"
        return INCONCLUSIVE
    s = stdev(finite)
    lo, hi = chi2_sd_interval(s, n)
    paper = float(ref.value)
    row.update(ours=s, estimator=f"std of {n}", delta=s - paper, tolerance=band)
    if paper <= 0:
        return INCONCLUSIVE
    r_lo, r_hi = lo / paper, hi / paper
    row.update(delta_low=lo - paper, delta_high=hi - paper)
    if s == 0:
        row["rule"] += f"; zero spread over {n} runs: the seeds had no effect"
        return DEVIATES
    if 1 / band <= r_lo and r_hi <= band:
        return REPRODUCED
    if r_lo > band or r_hi < 1 / band:
        return DEVIATES
    return INCONCLUSIVE


def _with_diverged(row: dict[str, Any], verdict: Verdict, diverged: int, finished: int) -> Verdict:
    """Diverged runs are never dropped: against a finite paper number, a row with diverged runs is at best
    INCONCLUSIVE, and DEVIATES when every one of at least two runs diverged."""
    if not diverged:
        return verdict
    if finished == 0 and diverged >= 2:
        row["rule"] += f"; all {diverged} runs diverged, the paper reports a finite number"
        return DEVIATES
    if verdict in (REPRODUCED, INCONCLUSIVE) or finished == 0:
        row["rule"] += f"; {diverged} of {diverged + finished} runs diverged (not a reproduction)"
        return INCONCLUSIVE
    return verdict


# Metrics relative to a baseline subject read from the run summary: (summary metric, how subject and baseline
# means combine). Their floors are METRIC_TABLE's; the log-scale ratios (weight_correlation_ratio,
# error_moment_ratio_gain) read their metric's Reduction instead and compare geometric means.
RELATIVE: dict[str, tuple[str, Any]] = {
    "train_time_overhead": ("epoch_train_seconds", lambda a, b: 100.0 * (a / b - 1.0)),
    "test_accuracy_gain": ("test_accuracy", lambda a, b: a - b),
}


def _relative_values(ref: Reference, runs: list[Run]) -> list[float]:
    if ref.metric in RELATIVE:
        return [r.summary.get(RELATIVE[ref.metric][0], float("nan")) for r in runs]
    return [per_run_value(r, ref.metric) for r in runs]


def compare_relative(
    ref: Reference, runs: list[Run], baseline: list[Run], row: dict[str, Any]
) -> dict[str, Any]:
    """A number relative to ``ref.baseline`` (overhead, gain, ratio): f(our runs, the baseline's runs).

    An accuracy gain (2 runs of each side at least) is the difference of means, ``SE = sqrt(s_a^2/n_a +
    s_b^2/n_b)``, with the verdict of :func:`decide` (Welch degrees of freedom); a time overhead is a point
    decision against its floor (one run of each side suffices: the device dominates its spread); a log-scale
    ratio is the ratio of the geometric means, judged as the difference of the mean log10 values (the same
    SE and rule, in decades).
    """
    info, tol = metric_info(ref.metric), TOLERANCE[ref.metric]
    timing = ref.metric == "train_time_overhead"
    rule = f"|Δ| ≤ {tol.floor:g}" if timing else tol.rule()
    if info.log:
        rule = f"{LOG_RULE}: {rule} (a factor {10**tol.floor:.3g}); ratio of geometric means"
    row["rule"] = f"{rule} (relative to {ref.baseline})"
    if not runs or not baseline:
        row["rule"] += ": no baseline runs" if runs else ""
        return row
    counts, base_counts = count_runs(runs), count_runs(baseline)
    runs, baseline = finished_runs(runs), finished_runs(baseline)
    diffs = protocol_differences(ref, runs) if runs else []
    row.update(
        runs=counts.total,
        diverged=counts.diverged,
        incomplete=counts.incomplete,
        damaged=counts.damaged,
        protocol_differences="; ".join(diffs),
        estimator="difference of means",
    )
    if base_counts.diverged or base_counts.incomplete or base_counts.damaged:
        row["rule"] += f"; baseline: {base_counts.describe()}"
    a_vals, b_vals = _relative_values(ref, runs), _relative_values(ref, baseline)
    if info.log:
        verdict, n_a = _judge_log_ratio(row, ref, tol.floor, a_vals, b_vals)
    else:
        verdict, n_a = _judge_difference(row, ref, tol.floor, a_vals, b_vals, timing)
    verdict = _with_diverged(row, verdict, counts.diverged, n_a)
    row["verdict"] = PROXY if diffs else verdict
    if diffs:
        row["runs_to_decide"] = None
    return row


def _judge_difference(
    row: dict[str, Any], ref: Reference, floor: float, a_vals: list[float], b_vals: list[float], timing: bool
) -> tuple[Verdict, int]:
    """An overhead or a gain from the two sides' means (:func:`compare_relative`); (verdict, n_a)."""
    a, s_a, n_a = sample_stats(a_vals)
    b, s_b, n_b = sample_stats(b_vals)
    ours = RELATIVE[ref.metric][1](a, b) if n_a and n_b and b else float("nan")
    n = min(n_a, n_b)
    row.update(ours=ours, ours_mean=ours, n=n)
    d = ours - ref.value
    if timing:
        row.update(delta=d, tolerance=floor, estimator="ratio of mean epoch times")
        ok = n >= 1 and math.isfinite(ours)
        return (INCONCLUSIVE if not ok else REPRODUCED if _within(ours, ref, floor) else DEVIATES), n_a
    se = math.sqrt(s_a**2 / n_a + s_b**2 / n_b) if n >= 2 else float("nan")
    return _set_interval(row, ref, d, se, floor, n, welch_df(s_a, n_a, s_b, n_b)), n_a


def _judge_log_ratio(
    row: dict[str, Any], ref: Reference, floor: float, a_vals: list[float], b_vals: list[float]
) -> tuple[Verdict, int]:
    """A ratio of geometric means (:func:`compare_relative`): d = mean log10(a) - mean log10(b) - log10(paper),
    SE and degrees of freedom as for a difference of means; (verdict, n_a)."""
    a_fin, b_fin = finite_values(a_vals), finite_values(b_vals)
    n_a, n = len(a_fin), min(len(a_fin), len(b_fin))
    row.update(n=n, estimator="ratio of geometric means")
    (la, bad_a), (lb, bad_b) = log10_values(a_fin), log10_values(b_fin)
    if bad_a or bad_b:
        return _nonpositive_verdict(row, bad_a + bad_b, len(a_fin) + len(b_fin)), n_a
    if not n or ref.value <= 0:
        return INCONCLUSIVE, n_a
    (ma, sa, na), (mb, sb, nb) = sample_stats(la), sample_stats(lb)
    ours = 10 ** (ma - mb)
    row.update(ours=ours, ours_mean=ours)
    se = math.sqrt(sa**2 / na + sb**2 / nb) if n >= 2 else float("nan")
    d = ma - mb - math.log10(ref.value)
    return _set_interval(row, ref, d, se, floor, n, welch_df(sa, na, sb, nb)), n_a


def compare(references: list[Reference], runs: list[Run]) -> pd.DataFrame:
    """The comparison table: one row per reference entry, in reference order."""
    rows = []
    for ref in references:
        relative = metric_info(ref.metric).kind == RELATIVE_KIND
        if relative and ref.baseline and ref.value is not None and not ref.config_only:
            base = ref.baseline
            baseline = [
                r
                for r in runs
                if run_matches(
                    r,
                    ref.table_key,
                    base["model"],
                    base.get("method", "none"),
                    base.get("options"),
                    base.get("optimizer"),
                    base.get("dataset", ref.dataset),
                )
            ]
            row = not_run_row(ref)
            rows.append(compare_relative(ref, matching_runs(ref, runs), baseline, row))
        else:
            rows.append(compare_one(ref, matching_runs(ref, runs)))
    return pd.DataFrame(rows)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _ours_cell(r: dict[str, Any]) -> str:
    if r["n"] == 0:
        return f"{r['diverged']} diverged" if r["diverged"] else "-"
    estimator = r.get("estimator")
    estimator = estimator if isinstance(estimator, str) else ""  # NaN when read back from the CSV
    if r.get("kind") == "structure" or r["statistic"] == "none":  # a single deterministic number
        return number(r["ours"], integral=r["metric"] in COUNT_METRICS)
    spread = mean_std(r["ours_mean"], r["ours_std"])
    if r.get("scale") != "log10" and r["statistic"] in ("mean", "unstated", "single") or not estimator:
        return spread
    return f"{number(r['ours'])} ({estimator}); mean {spread}"


def _runs_cell(r: dict[str, Any]) -> str:
    """The runs behind a row: ``n`` used, with diverged, incomplete and damaged ones named (never silently
    dropped)."""
    n = f"{int(r['n'])}" if _finite(r.get("n")) else "0"
    extra = []
    for key in ("diverged", "incomplete", "damaged"):
        k = r.get(key)
        if _finite(k) and k:
            extra.append(f"{int(k)} {key}")
    return f"{n} ({', '.join(extra)})" if extra else n


def _delta_cell(r: dict[str, Any]) -> str:
    if _finite(r["delta"]) and _finite(r.get("half_width")):
        cell = f"{round(r['delta'], 2) or 0.0:+.2f} ± {r['half_width']:.2f}"  # no '-0.00'
        return f"{cell} (log10)" if r.get("scale") == "log10" else cell
    return number(r["delta"], integral=r["metric"] in COUNT_METRICS)


def _verdict_cell(r: dict[str, Any]) -> str:
    if r["verdict"] != INCONCLUSIVE:
        return r["verdict"]
    if r["n"] < 2:
        return f"INCONCLUSIVE ({r['n']} run{'s' if r['n'] != 1 else ''}: no spread)"
    if _finite(r.get("runs_to_decide")):
        return f"INCONCLUSIVE (about {int(r['runs_to_decide'])} runs would decide)"
    return INCONCLUSIVE


def display_rows(df: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the human-readable comparison. Ours is our mean ± std over the runs, preceded by
    our estimate of the paper's statistic where that is not the mean (best of n, std); Δ is ours - paper ±
    the half-width of its 95 % Student-t interval; model quantities show the single number."""
    headers = [
        "paper",
        "table",
        "row",
        "column",
        "statistic",
        "paper",
        "ours (mean ± std)",
        "runs",
        "Δ (± t·SE, 95 %)",
        "tolerance rule",
        "verdict",
        "protocol differences",
    ]
    rows = []
    for r in df.to_dict("records"):
        rows.append(
            [
                r["paper"],
                r["table"],
                r["row"],
                r["column"],
                r["statistic"],
                "'-' (diverges)"
                if r["paper_value"] is None
                else number(r["paper_value"], integral=r["metric"] in COUNT_METRICS),
                _ours_cell(r),
                _runs_cell(r),
                _delta_cell(r),
                r["rule"],
                _verdict_cell(r),
                r["protocol_differences"],
            ]
        )
    return headers, rows


def verdict_counts(df: pd.DataFrame, kind: str = "trained") -> pd.DataFrame:
    """Verdict counts per paper (rows) and verdict (columns) of the rows of one ``kind``: ``trained``
    results (the headline) or ``structure`` (registry checks, counted apart)."""
    papers = sorted(df["paper"].unique())
    part = df[df["kind"] == kind] if "kind" in df else df
    counts = pd.crosstab(part["paper"], part["verdict"]).reindex(
        index=papers, columns=list(VERDICTS), fill_value=0
    )
    counts.index.name = "paper"
    return counts.reset_index()


def write_verdict_files(
    out_dir: str | Path,
    stem: str,
    df: pd.DataFrame,
    records: list[dict[str, Any]],
    legend: list[str],
    counts: pd.DataFrame,
    table: tuple[list[str], list[list[str]]],
) -> list[Path]:
    """``<stem>.csv`` (the frame), ``<stem>.json`` (``records``) and ``<stem>.md`` (``legend``, the verdict
    ``counts``, then the human-readable ``table`` as (headers, rows)) in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df.to_csv(out_dir / f"{stem}.csv", index=False)
    (out_dir / f"{stem}.json").write_text(json.dumps(records, indent=1, ensure_ascii=False) + "\n")
    headers, rows = table
    md = [
        *legend,
        "",
        tabulate(counts.values.tolist(), headers=list(counts.columns), tablefmt="github"),
        "",
        tabulate(rows, headers=headers, tablefmt="github"),
        "",
    ]
    (out_dir / f"{stem}.md").write_text("\n".join(md), encoding="utf-8")
    return [out_dir / f"{stem}.{ext}" for ext in ("csv", "md", "json")]


def write_comparison(df: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """``comparison.csv`` (machine), ``comparison.md`` (human) and ``comparison.json`` in ``out_dir``."""
    legend = [
        "# Comparison with the papers",
        "",
        "Verdicts: REPRODUCED, DEVIATES, INCONCLUSIVE, PROXY (our protocol differs from the paper's: never a",
        "reproduction), NOT RUN. With Δ = ours − paper, SE the standard error of ours and f the metric's floor",
        "(column 'tolerance') and t the 95 % Student-t quantile at n − 1 degrees of freedom: REPRODUCED when",
        "|Δ| ≤ f and t·SE ≤ f; DEVIATES when |Δ| − t·SE > f (the whole interval lies outside the band ±f);",
        "INCONCLUSIVE otherwise or with fewer than 2 runs. A std row is judged as a spread (chi-square",
        "interval of ours/paper against [1/2, 2]). Runs: finished runs used, diverged ones counted (a finite",
        "paper number with diverged runs is never REPRODUCED), incomplete ones (log shorter than the configured",
        "epochs) excluded. Rows marked (log10) are judged on the log10 scale: Δ in decades, ours a geometric",
        "mean, the floor a factor. Structure rows (parameter counts, depths, block counts) are checked from the",
        "registry and counted apart from trained results. Like with like: mean vs our mean, best of n vs our",
        "best of n (Boo_n when our number of runs differs). See `normbench.verdicts.numbers` and",
        "`normbench.verdicts`.",
    ]
    records = json.loads(df.to_json(orient="records"))
    return write_verdict_files(
        out_dir, "comparison", df, records, legend, verdict_counts(df), display_rows(df)
    )


def strict_failures(df: pd.DataFrame) -> pd.DataFrame:
    """Rows that fail ``--strict``: a non-PROXY row that DEVIATES (trained results and structure alike; the
    ``kind`` column says which)."""
    return df[df["verdict"] == DEVIATES]
