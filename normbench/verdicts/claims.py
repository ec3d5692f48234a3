"""The papers' qualitative claims against our runs: one row per claim, with its own verdict.

Each :class:`~normbench.references.Claim` names a check from :data:`~normbench.references.CHECKS` and its
arguments (``docs/references.md``, "Claims and the check vocabulary"). :func:`evaluate_claims` applies the
check to the runs of every subject the claim names and returns one row per claim; :func:`write_claims`
writes ``claims.csv``, ``claims.md`` and ``claims.json``.

**Subjects and runs** (:func:`subject_runs`). A subject's runs are those that
:func:`normbench.verdicts.numbers.run_matches` accepts for the claim's ``<paper>/<table>`` (the same matching as the
numbers: ``reproduces``, model, method, its optimizer where named, and its data set, ``dataset`` or else the
claim protocol's, against the run's ``paper_dataset``: a proxy run on digits stands for the data set its
experiment names), and whose method options equal the subject's *after filling in each method part's
defaults on both sides* (the keyword defaults of its class in
:data:`normbench.methods.METHODS`). A subject is one configuration: one without options means the defaults,
so ``{method: ortho_init+ortho_reg+modulation}`` is modulation for the default 2000 iterations and does not
also take the "always" runs (``n_iters: 1000000000``), and ``{method: procrustes}`` does not take the SVD runs
(``path: svd``). A subject without ``optimizer`` takes any optimizer.

**Verdicts**, in this order:

- ``NOT RUN``: the claim's protocol is configuration-only (ImageNet), or some subject the check needs has no
  run. Comparisons whose subjects did run are still measured and shown.
- ``PROXY``: every subject ran, but our protocol differs from the claim's: data set, epochs, or fewer runs
  than the paper's. ``outcome`` and ``holds_on_proxy`` say whether the claim would hold on these runs;
  a PROXY row is never a reproduction and never fails ``--strict``.
- ``REPRODUCED`` / ``DEVIATES`` / ``INCONCLUSIVE``: the check's outcome PASS / FAIL / INCONCLUSIVE.

**Statistics** (95 % Student-t intervals, :mod:`normbench.verdicts.statistics`, applied to differences):

- *a below b* (``order_less_than``, ``less_than`` with ``b``, ``best_among``, ``closer_to_one``,
  ``monotone_with_depth``): with the per-run values of each subject (n_a, n_b >= 2), d = mean(a) - mean(b)
  and its interval d ± t·SE, where SE = s_delta/√n paired per seed when both subjects ran the same seeds
  (t at n - 1 degrees of freedom),
  else SE = √(s_a²/n_a + s_b²/n_b) (t at the Welch-Satterthwaite degrees of freedom). PASS if the whole interval is below 0, FAIL if it is wholly above 0,
  else INCONCLUSIVE. (This is never stricter than asking that the two intervals mean ± t·SE do not
  overlap: non-overlapping intervals always give a difference interval that excludes 0.) With fewer than
  two runs on either side: INCONCLUSIVE, showing the point comparison.
- *a below a number* (``less_than`` with ``value``): the interval mean ± t·s/√n of a's runs; PASS if
  entirely below the value, FAIL if entirely above, else INCONCLUSIVE (one run: INCONCLUSIVE).
- *a approximately b* (``approximately_equal``): PASS if d ± t·SE lies inside [-tolerance, tolerance],
  FAIL if it lies entirely outside, else INCONCLUSIVE.
- *a gain shrinks* (``gain_shrinks``): with gains g = mean(treated) - mean(baseline) (reversed on errors and
  losses), d = g_2 - g_1 and SE = √(Σ s²/n) over the four subjects, Satterthwaite degrees of freedom: PASS
  if d ± t·SE lies below 0, FAIL if above, else INCONCLUSIVE (also with fewer than 2 runs a side or any
  diverged run).
- *Diverged runs* have no final error: comparisons use the finished runs and say how many diverged. On a
  performance metric (errors, losses, accuracies), a subject all of whose runs diverged (at least 2) is the
  worse side against a subject with at least 2 finished runs: the comparison is decided on that alone.
  A claim never passes on the survivors: when some runs of the side the claim says is better diverged (a on
  an error, b on an accuracy, either side on a metric without a direction), a PASS becomes INCONCLUSIVE.
- *Incomplete runs* (the log stops before the configured epochs, without diverging) are excluded and counted.
- *Infinite values* (e.g. a condition number reported as ∞): the comparison is decided by the order of the
  runs, PASS if every run of a is below every run of b (at least 2 runs each), FAIL if every run of a is
  above every run of b, else INCONCLUSIVE.
- *Several comparisons in one claim* (chains, pairs, series, subjects): PASS if all pass, FAIL if any fails,
  else INCONCLUSIVE; each comparison is shown in ``measured`` and listed in ``comparisons``.

**Per-run numbers**: :func:`normbench.verdicts.values.run_value`, one number per run for each metric (the run
summary's, or a reduction of its probe records by the claim's ``aggregate``, ``blocks``, ``epochs`` and a
subject's ``layers``); the module docstring there lists them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import mean, stdev
from typing import Any

import pandas as pd

from normbench.references import CHECKS, Claim
from normbench.runs.folder import DATASET_SHAPES, Run
from normbench.verdicts import (
    DEVIATES,
    INCONCLUSIVE,
    NOT_RUN,
    PROXY,
    REPRODUCED,
    VERDICTS,
    run_status,
    t_quantile,
    welch_df,
)
from normbench.verdicts.accounting import DAMAGED, INCOMPLETE
from normbench.verdicts.numbers import run_matches, write_verdict_files
from normbench.verdicts.protocol import protocol_differences as check_protocol
from normbench.verdicts.statistics import satterthwaite_df
from normbench.verdicts.values import (
    HIGHER_IS_BETTER,
    LOWER_IS_BETTER,
    METRICS,
    TIME_SERIES,
    run_value,
    series_points,
    train_seconds,
)

PASS, FAIL = "PASS", "FAIL"  # a check's outcome; INCONCLUSIVE and NOT_RUN are shared with the verdicts
OUTCOME_VERDICT = {PASS: REPRODUCED, FAIL: DEVIATES, INCONCLUSIVE: INCONCLUSIVE}

COLUMNS = [
    "id",
    "paper",
    "claim",
    "table",
    "section",
    "statement",
    "check",
    "subjects",
    "measured",
    "outcome",
    "holds_on_proxy",
    "verdict",
    "protocol_differences",
    "runs",
    "per_dataset",
    "note",
    "comparisons",
]


# ---------------------------------------------------------------------------------------------- subjects


def subject_dataset(subject: Mapping[str, Any], default: str) -> str:
    return subject.get("dataset", default)


def subject_runs(subject: Mapping[str, Any], runs: Iterable[Run], table_key: str, dataset: str) -> list[Run]:
    """The runs of one subject (``{model, method, options, optimizer, dataset}``) for ``<paper>/<table>``.

    ``dataset`` is the subject's data set when it names none (the claim protocol's); matching is
    :func:`normbench.verdicts.numbers.run_matches`, the same as for reference numbers.
    """
    method = subject.get("method", "none")
    return [
        r
        for r in runs
        if run_matches(
            r,
            table_key,
            subject["model"],
            method,
            subject.get("options") or {},
            subject.get("optimizer"),
            subject_dataset(subject, dataset),
        )
    ]


def subject_label(subject: Mapping[str, Any]) -> str:
    """``model method(opt=value) optimizer on dataset``: only what the subject names."""
    out = subject["model"]
    method = subject.get("method", "none")
    if method != "none":
        out += f" {method}"
        opts = subject.get("options") or {}
        parts = method.split("+")
        items = [
            (f"{part}.{k}" if len(parts) > 1 else k, v) for part, kv in opts.items() for k, v in kv.items()
        ]
        if items:
            out += (
                "(" + ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in items) + ")"
            )
    if subject.get("optimizer"):
        out += f" {subject['optimizer']}"
    if subject.get("dataset"):
        out += f" on {subject['dataset']}"
    if subject.get("blocks"):
        out += f" {subject['blocks'].replace('_', ' ')} blocks"
    if subject.get("epochs"):
        out += f" epochs {subject['epochs'][0]}-{subject['epochs'][1]}"
    if subject.get("layers"):
        out += f" layers {subject['layers'][0]:g}-{subject['layers'][1]:g} of the depth"
    return out


def _key(subject: Mapping[str, Any]) -> str:
    return json.dumps(subject, sort_keys=True)


def _as_list(x: Any) -> list:
    return x if isinstance(x, list) else [x]


def _baseline(subject: Mapping[str, Any]) -> dict[str, Any]:
    """The subject a ``train_time_overhead`` is relative to: the same model without any method."""
    return {k: v for k, v in subject.items() if k in ("model", "dataset", "optimizer")}


# ------------------------------------------------------------------------------------------- statistics


@dataclass
class Sample:
    """One subject's per-run numbers for one metric."""

    label: str
    runs: list[Run]
    values: list[tuple[Any, float]] = field(default_factory=list)  # (seed, value), value not NaN
    diverged: int = 0  # runs that diverged and have no value
    missing: int = 0  # runs that did not record the metric (and did not diverge)
    incomplete: int = 0  # runs whose log stops before the configured epochs: excluded
    damaged: int = 0  # runs whose log cannot be read: excluded
    worst: float | None = None  # the value a diverged run stands for on a performance metric

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def vals(self) -> list[float]:
        return [v for _, v in self.values]

    @property
    def all_diverged(self) -> bool:
        return self.worst is not None and len(self.runs) >= 2 and self.diverged == len(self.runs)

    def describe(self) -> str:
        if not self.runs:
            return f"{self.label}: not run"
        vals = self.vals
        if not vals:
            body = "no value"
        elif len(vals) == 1:
            body = _f(vals[0])
        elif all(math.isfinite(v) for v in vals):
            body = f"{_f(mean(vals))} ± {_f(stdev(vals), 3)}"
        else:
            body = "[" + ", ".join(_f(v) for v in vals) + "]"
        extra = [f"n={self.n}"]
        if self.diverged:
            extra.append(f"{self.diverged} diverged")
        if self.missing:
            extra.append(f"{self.missing} not recorded")
        if self.incomplete:
            extra.append(f"{self.incomplete} incomplete, excluded")
        if self.damaged:
            extra.append(f"{self.damaged} damaged, excluded")
        return f"{self.label} {body} ({', '.join(extra)})"


def _f(x: float, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "∞" if x > 0 else "-∞"
    return f"{x:.{digits}g}"


def make_sample(
    label: str,
    runs: list[Run],
    metric: str,
    value_fn: Callable[[Run], float],
) -> Sample:
    sample = Sample(label, runs)
    if metric in LOWER_IS_BETTER:
        sample.worst = math.inf
    elif metric in HIGHER_IS_BETTER:
        sample.worst = -math.inf
    for r in runs:
        if run_status(r) == INCOMPLETE:
            sample.incomplete += 1
            continue
        if run_status(r) == DAMAGED:
            sample.damaged += 1
            continue
        v = value_fn(r)
        if not math.isnan(v):
            sample.values.append((r.config.get("seed"), v))
        elif r.summary.get("diverged"):
            sample.diverged += 1
        else:
            sample.missing += 1
    return sample


@dataclass
class Comparison:
    """One elementary comparison of a claim, with its outcome and a human-readable line."""

    what: str
    outcome: str
    text: str

    def to_dict(self) -> dict[str, str]:
        return {"what": self.what, "outcome": self.outcome, "text": self.text}


def diff_interval(a: Sample, b: Sample) -> tuple[float, float, bool, float]:
    """(d, SE, paired, df): d = mean(a) - mean(b); SE paired per seed when both ran the same seeds (n >= 2,
    df = n - 1), else unpaired with the Welch-Satterthwaite df."""
    sa, sb = dict(a.values), dict(b.values)
    paired = a.n == b.n >= 2 and len(sa) == a.n and len(sb) == b.n and set(sa) == set(sb)
    if paired:
        deltas = [sa[k] - sb[k] for k in sa]
        return mean(deltas), stdev(deltas) / math.sqrt(len(deltas)), True, len(deltas) - 1
    d = mean(a.vals) - mean(b.vals)
    s_a, s_b = stdev(a.vals), stdev(b.vals)
    se = math.sqrt(s_a**2 / a.n + s_b**2 / b.n)
    return d, se, False, welch_df(s_a, a.n, s_b, b.n)


def _survivors_only(outcome: str, text: str, *better: Sample) -> tuple[str, str]:
    """A claim never passes on the survivors: when a side the claim says is better (or, on a metric without a
    direction, any side) lost runs to divergence, PASS becomes INCONCLUSIVE."""
    lost = [s for s in better if s.diverged]
    if outcome != PASS or not lost:
        return outcome, text
    which = ", ".join(f"{s.diverged} run(s) of {s.label}" for s in lost)
    return INCONCLUSIVE, f"{text[: text.rfind('→')].rstrip()}; {which} diverged → INCONCLUSIVE"


def _better_sides(a: Sample, b: Sample) -> tuple[Sample, ...]:
    """The sides of ``a < b`` whose diverged runs contradict it: a on an error, b on an accuracy, both on a
    metric with no direction."""
    if a.worst is None:
        return a, b
    return (a,) if a.worst > 0 else (b,)


def _not_run(what: str, *samples: Sample) -> Comparison | None:
    missing = [s.label for s in samples if not s.runs]
    if missing:
        return Comparison(what, NOT_RUN, f"{what}: not run ({', '.join(missing)})")
    return None


def compare_less(a: Sample, b: Sample) -> Comparison:
    """The claim mean(a) < mean(b), by the rules of the module docstring."""
    what = f"{a.label} < {b.label}"
    nr = _not_run(what, a, b)
    if nr:
        return nr
    head = f"{a.describe()} < {b.describe()}"
    if a.worst is not None and (a.all_diverged or b.all_diverged):
        if a.all_diverged and b.all_diverged:
            return Comparison(what, INCONCLUSIVE, f"{head}: both diverged → INCONCLUSIVE")
        other = b if a.all_diverged else a
        if other.n >= 2:
            # the diverged side takes the worst value: +inf for errors, -inf for accuracies
            a_worse = a.all_diverged
            holds = (a.worst > 0) != a_worse  # error: a < b holds iff b diverged; accuracy: iff a diverged
            outcome = PASS if holds else FAIL
            side = a.label if a_worse else b.label
            return Comparison(what, outcome, f"{head}: every run of {side} diverged → {outcome}")
    if a.n < 2 or b.n < 2:
        if a.n and b.n:
            point = "holds" if mean(a.vals) < mean(b.vals) else "does not hold"
            return Comparison(
                what,
                INCONCLUSIVE,
                f"{head}: fewer than 2 runs with a value, point comparison {point} → INCONCLUSIVE",
            )
        return Comparison(what, INCONCLUSIVE, f"{head}: fewer than 2 runs with a value → INCONCLUSIVE")
    if not all(math.isfinite(v) for v in a.vals + b.vals):
        if max(a.vals) < min(b.vals):
            outcome = PASS
        elif min(a.vals) > max(b.vals):
            outcome = FAIL
        else:
            outcome = INCONCLUSIVE
        return Comparison(what, outcome, f"{head}: infinite values, order of the runs → {outcome}")
    d, se, paired, df = diff_interval(a, b)
    half = t_quantile(df) * se
    lo, hi = d - half, d + half
    outcome = PASS if hi < 0 else FAIL if lo > 0 else INCONCLUSIVE
    how = "paired" if paired else "unpaired"
    text = f"{head}: Δ = {_f(d)} ± {_f(half, 3)} (95 % t, {_f(df, 3)} df, {how}) → {outcome}"
    outcome, text = _survivors_only(outcome, text, *_better_sides(a, b))
    return Comparison(what, outcome, text)


def compare_value(a: Sample, value: float) -> Comparison:
    """The claim mean(a) < value: interval mean ± 2 s/√n."""
    what = f"{a.label} < {value:g}"
    nr = _not_run(what, a)
    if nr:
        return nr
    head = f"{a.describe()} < {value:g}"
    if a.all_diverged:
        outcome = FAIL if a.worst > value else PASS
        return Comparison(what, outcome, f"{head}: every run diverged → {outcome}")
    if a.n < 2:
        point = "" if not a.n else f", point comparison {'holds' if a.vals[0] < value else 'does not hold'}"
        return Comparison(what, INCONCLUSIVE, f"{head}: fewer than 2 runs with a value{point} → INCONCLUSIVE")
    if not all(math.isfinite(v) for v in a.vals):
        outcome = PASS if max(a.vals) < value else FAIL if min(a.vals) > value else INCONCLUSIVE
        return Comparison(what, outcome, f"{head}: infinite values, every run → {outcome}")
    m, half = mean(a.vals), t_quantile(a.n - 1) * stdev(a.vals) / math.sqrt(a.n)
    outcome = PASS if m + half < value else FAIL if m - half > value else INCONCLUSIVE
    text = f"{head}: {_f(m)} ± {_f(half, 3)} (95 % t) → {outcome}"
    # a diverged run stands for the worst value: on an error it is above any bound; on an accuracy it cannot
    # be above one (a < value holds for it) and on a metric with no direction it is unknown
    if a.worst is None or a.worst > 0:
        outcome, text = _survivors_only(outcome, text, a)
    return Comparison(what, outcome, text)


def compare_approx(a: Sample, b: Sample, tolerance: float) -> Comparison:
    """The claim |mean(a) - mean(b)| <= tolerance: d ± t·SE inside [-tol, tol] passes, outside fails."""
    what = f"{a.label} ≈ {b.label} (±{tolerance:g})"
    nr = _not_run(what, a, b)
    if nr:
        return nr
    head = f"{a.describe()} ≈ {b.describe()} within ±{tolerance:g}"
    if a.worst is not None and (a.all_diverged or b.all_diverged):
        if a.all_diverged and b.all_diverged:
            return Comparison(what, INCONCLUSIVE, f"{head}: both diverged → INCONCLUSIVE")
        if (b if a.all_diverged else a).n >= 2:
            return Comparison(what, FAIL, f"{head}: only one side diverged → FAIL")
    if a.n < 2 or b.n < 2:
        point = ""
        if a.n and b.n:
            point = f", point Δ = {_f(mean(a.vals) - mean(b.vals))}"
        return Comparison(what, INCONCLUSIVE, f"{head}: fewer than 2 runs with a value{point} → INCONCLUSIVE")
    if not all(math.isfinite(v) for v in a.vals + b.vals):
        return Comparison(what, INCONCLUSIVE, f"{head}: infinite values → INCONCLUSIVE")
    d, se, paired, df = diff_interval(a, b)
    half = t_quantile(df) * se
    lo, hi = d - half, d + half
    if -tolerance <= lo and hi <= tolerance:
        outcome = PASS
    elif lo > tolerance or hi < -tolerance:
        outcome = FAIL
    else:
        outcome = INCONCLUSIVE
    how = "paired" if paired else "unpaired"
    text = f"{head}: Δ = {_f(d)} ± {_f(half, 3)} (95 % t, {_f(df, 3)} df, {how}) → {outcome}"
    outcome, text = _survivors_only(outcome, text, a, b)
    return Comparison(what, outcome, text)


def compare_gains(first: tuple[Sample, Sample], second: tuple[Sample, Sample], metric: str) -> Comparison:
    """The claim gain(second) < gain(first), each pair ``(baseline, treated)`` and its gain ``mean(treated) -
    mean(baseline)`` (``mean(baseline) - mean(treated)`` on a metric where lower is better). With
    ``d = gain(second) - gain(first)``, ``SE = sqrt(sum s_i^2/n_i)`` over the four subjects (unpaired) and the
    Satterthwaite degrees of freedom: PASS if ``d ± t·SE`` lies below 0, FAIL if above, else INCONCLUSIVE.
    Fewer than 2 runs on any side, infinite values or diverged runs: INCONCLUSIVE (a gain is never decided
    on the survivors)."""
    (b1, t1), (b2, t2) = first, second
    what = f"gain of {t2.label} over {b2.label} < gain of {t1.label} over {b1.label}"
    samples = (b1, t1, b2, t2)
    nr = _not_run(what, *samples)
    if nr:
        return nr
    head = f"{what} ({'; '.join(s.describe() for s in samples)})"
    lost = [s for s in samples if s.diverged]
    if lost:
        runs = ", ".join(f"{s.diverged} run(s) of {s.label}" for s in lost)
        return Comparison(what, INCONCLUSIVE, f"{head}: {runs} diverged → INCONCLUSIVE")
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    if any(s.n == 0 for s in samples):
        return Comparison(what, INCONCLUSIVE, f"{head}: a side has no value → INCONCLUSIVE")
    if not all(math.isfinite(v) for s in samples for v in s.vals):
        return Comparison(what, INCONCLUSIVE, f"{head}: infinite values → INCONCLUSIVE")
    g1 = sign * (mean(t1.vals) - mean(b1.vals))
    g2 = sign * (mean(t2.vals) - mean(b2.vals))
    d = g2 - g1
    if any(s.n < 2 for s in samples):
        point = "holds" if d < 0 else "does not hold"
        text = f"{head}: gains {_f(g2)} vs {_f(g1)}, fewer than 2 runs on a side, point comparison {point}"
        return Comparison(what, INCONCLUSIVE, f"{text} → INCONCLUSIVE")
    spreads = [(stdev(s.vals), s.n) for s in samples]
    se = math.sqrt(sum(sd**2 / n for sd, n in spreads))
    df = satterthwaite_df(spreads)
    half = t_quantile(df) * se
    outcome = PASS if d + half < 0 else FAIL if d - half > 0 else INCONCLUSIVE
    text = f"{head}: gains {_f(g2)} vs {_f(g1)}, Δ = {_f(d)} ± {_f(half, 3)} (95 % t, {_f(df, 3)} df)"
    return Comparison(what, outcome, f"{text} → {outcome}")


def combine(outcomes: Iterable[str]) -> str:
    """PASS if all pass, FAIL if any fails, else INCONCLUSIVE (NOT RUN parts leave the rest to decide)."""
    found = [o for o in outcomes if o != NOT_RUN]
    if not found:
        return NOT_RUN
    if FAIL in found:
        return FAIL
    return PASS if all(o == PASS for o in found) else INCONCLUSIVE


# ------------------------------------------------------------------------------------------- the checks


@dataclass
class Context:
    """What a check needs: the claim, each subject's runs, and per-subject samples of a metric."""

    claim: Claim
    runs_of: dict[str, list[Run]]

    @property
    def args(self) -> dict[str, Any]:
        return self.claim.args

    def runs(self, subject: Mapping[str, Any]) -> list[Run]:
        return self.runs_of[_key(subject)]

    def sample(self, subject: Mapping[str, Any], metric: str | None = None) -> Sample:
        args = self.args
        metric = metric or args["metric"]
        baseline_seconds = None
        if metric == "train_time_overhead":
            base = [train_seconds(r) for r in self.runs(_baseline(subject))]
            base = [t for t in base if math.isfinite(t)]
            baseline_seconds = mean(base) if base else None

        def value(run: Run) -> float:
            return run_value(
                run,
                metric,
                args.get("aggregate"),
                subject.get("blocks", args.get("blocks", "all")),
                subject.get("epochs", args.get("epochs")) if metric in TIME_SERIES else None,
                baseline_seconds,
                subject.get("layers"),
            )

        return make_sample(subject_label(subject), self.runs(subject), metric, value)


def _check_diverges_within_epochs(ctx: Context) -> list[Comparison]:
    args = ctx.args
    limit = args["epochs"] + args.get("tolerance_epochs", 0)
    min_fraction = args.get("min_fraction", 1.0)
    out = []
    for subject in _as_list(args["subjects"]):
        label, runs = subject_label(subject), ctx.runs(subject)
        what = f"{label} diverges within {limit} epochs"
        if not runs:
            out.append(Comparison(what, NOT_RUN, f"{label}: not run"))
            continue
        in_time, late, survived = [], [], 0
        for r in runs:
            s = r.summary
            if s.get("diverged") and s.get("diverged_epoch") is not None and s["diverged_epoch"] <= limit:
                in_time.append(s["diverged_epoch"])
            elif s.get("diverged"):
                late.append(s.get("diverged_epoch"))
                survived += 1
            elif s.get("epochs", 0) >= limit:
                survived += 1
        n = len(runs)
        if len(in_time) >= min_fraction * n:
            outcome = PASS
        elif survived > (1 - min_fraction) * n:
            outcome = FAIL
        else:
            outcome = INCONCLUSIVE
        text = f"{label}: {len(in_time)}/{n} runs diverged within {limit} epochs"
        if in_time:
            text += f" (at epochs {', '.join(str(e) for e in sorted(in_time))})"
        if late:
            text += f", {len(late)} later (epochs {', '.join(str(e) for e in sorted(late))})"
        if survived - len(late):
            text += f", {survived - len(late)} finished {limit} epochs without diverging"
        short = n - len(in_time) - survived
        if short:
            text += f", {short} stopped before epoch {limit} without diverging"
        out.append(Comparison(what, outcome, f"{text} → {outcome}"))
    return out


def _num_classes(dataset: str) -> int | None:
    shape = DATASET_SHAPES.get(dataset)
    return shape[0] if shape else None


def _threshold_check(ctx: Context, learns: bool) -> list[Comparison]:
    """``learns`` / ``does_not_learn``: every run must be on the claimed side of the threshold."""
    args = ctx.args
    metric = args["metric"]
    out = []
    for subject in _as_list(args["subjects"]):
        label, runs = subject_label(subject), ctx.runs(subject)
        what = f"{label} {'learns' if learns else 'does not learn'}"
        if not runs:
            out.append(Comparison(what, NOT_RUN, f"{label}: not run"))
            continue
        good, bad, unknown, shown = 0, 0, 0, []
        thresholds = set()
        for r in runs:
            if learns:
                threshold = args["at_least"]
            elif "at_most" in args:
                threshold = args["at_most"]
            else:
                classes = _num_classes(r.config.get("dataset", ""))
                threshold = args["at_most_times_chance"] * 100.0 / classes if classes else math.nan
            thresholds.add(threshold)
            v = run_value(r, metric)
            if r.summary.get("diverged"):
                shown.append(f"diverged at epoch {r.summary.get('diverged_epoch')}")
                good, bad = (good, bad + 1) if learns else (good + 1, bad)
                continue
            shown.append(_f(v))
            if math.isnan(v) or math.isnan(threshold):
                unknown += 1
            elif (v >= threshold) if learns else (v <= threshold):
                good += 1
            else:
                bad += 1
        outcome = FAIL if bad else PASS if not unknown else INCONCLUSIVE
        verb = "learn" if learns else "do not learn"
        rel = "≥" if learns else "≤"
        thr = ", ".join(f"{t:g}" for t in sorted(thresholds))
        text = f"{label}: {good}/{len(runs)} runs {verb} ({metric} {rel} {thr}: {', '.join(shown)})"
        if unknown:
            text += f", {unknown} without a value"
        out.append(Comparison(what, outcome, f"{text} → {outcome}"))
    return out


def _check_does_not_learn(ctx: Context) -> list[Comparison]:
    return _threshold_check(ctx, learns=False)


def _check_learns(ctx: Context) -> list[Comparison]:
    return _threshold_check(ctx, learns=True)


def _check_less_than(ctx: Context) -> list[Comparison]:
    args = ctx.args
    out = []
    for a in _as_list(args["a"]):
        if "b" in args:
            out.append(compare_less(ctx.sample(a), ctx.sample(args["b"])))
        else:
            out.append(compare_value(ctx.sample(a), float(args["value"])))
    return out


def _check_order_less_than(ctx: Context) -> list[Comparison]:
    out = []
    for chain in ctx.args["chains"]:
        samples = [ctx.sample(s) for s in chain]
        out += [compare_less(x, y) for x, y in zip(samples, samples[1:])]
    return out


def _check_approximately_equal(ctx: Context) -> list[Comparison]:
    tol = float(ctx.args["tolerance"])
    return [compare_approx(ctx.sample(a), ctx.sample(b), tol) for a, b in ctx.args["pairs"]]


def _check_best_among(ctx: Context) -> list[Comparison]:
    args = ctx.args
    best = ctx.sample(args["best"])
    others = [ctx.sample(s) for s in args["others"]]
    if args.get("direction", "max") == "max":
        return [compare_less(o, best) for o in others]
    return [compare_less(best, o) for o in others]


def _check_ratio_concentrated_near_one(ctx: Context) -> list[Comparison]:
    args = ctx.args
    lo, hi = args["band"]
    fraction = args["fraction"]
    out = []
    for subject in _as_list(args["subjects"]):
        label, runs = subject_label(subject), ctx.runs(subject)
        what = f"{label} within [{lo:g}, {hi:g}]"
        if not runs:
            out.append(Comparison(what, NOT_RUN, f"{label}: not run"))
            continue
        points = [
            v
            for r in runs
            for p in series_points(r, args["metric"], args.get("blocks", "all"), args.get("epochs"))
            for v in p
            if not math.isnan(v)
        ]
        if not points:
            out.append(
                Comparison(what, INCONCLUSIVE, f"{label}: {args['metric']} not recorded → INCONCLUSIVE")
            )
            continue
        inside = sum(lo <= v <= hi for v in points) / len(points)
        outcome = PASS if inside >= fraction else FAIL
        text = (
            f"{label}: {100 * inside:.1f}% of {len(points)} points ({len(runs)} runs) in [{lo:g}, {hi:g}] "
            f"(claimed ≥ {100 * fraction:g}%) → {outcome}"
        )
        out.append(Comparison(what, outcome, text))
    return out


def _check_closer_to_one(ctx: Context) -> list[Comparison]:
    args = {"aggregate": "median_abs_log", **ctx.args}
    ctx = Context(_with_args(ctx.claim, args), ctx.runs_of)
    return [compare_less(ctx.sample(a), ctx.sample(b)) for a, b in args["pairs"]]


def _check_monotone_with_depth(ctx: Context) -> list[Comparison]:
    increasing = ctx.args.get("direction", "increasing") == "increasing"
    out = []
    for series in ctx.args["series"]:
        samples = [ctx.sample(s) for s in series]
        for x, y in zip(samples, samples[1:]):
            out.append(compare_less(x, y) if increasing else compare_less(y, x))
    return out


def _every_value(ctx: Context, holds: Callable[[float], bool], adjective: str) -> list[Comparison]:
    """``all_finite`` / ``all_positive``: every value of every point of every run of every subject is
    ``adjective`` (``holds``); FAIL on one that is not (NaN included), INCONCLUSIVE when a run did not record
    the metric."""
    args = ctx.args
    out = []
    for subject in _as_list(args["subjects"]):
        label, runs = subject_label(subject), ctx.runs(subject)
        what = f"{label} {args['metric']} {adjective}"
        if not runs:
            out.append(Comparison(what, NOT_RUN, f"{label}: not run"))
            continue
        total = bad = unrecorded = 0
        for r in runs:
            pts = series_points(r, args["metric"])
            if not pts:
                unrecorded += 1
            for v in (v for p in pts for v in p):
                total += 1
                bad += not holds(v)
        outcome = FAIL if bad else INCONCLUSIVE if unrecorded else PASS
        text = f"{label}: {bad}/{total} layer values not {adjective} over {len(runs)} runs"
        if unrecorded:
            text += f", {unrecorded} runs without {args['metric']}"
        out.append(Comparison(what, outcome, f"{text} → {outcome}"))
    return out


def _check_all_finite(ctx: Context) -> list[Comparison]:
    return _every_value(ctx, math.isfinite, "finite")


def _check_all_positive(ctx: Context) -> list[Comparison]:
    return _every_value(ctx, lambda v: v > 0, "positive")


def _check_gain_shrinks(ctx: Context) -> list[Comparison]:
    metric = ctx.args["metric"]
    pairs = [(ctx.sample(base), ctx.sample(treated)) for base, treated in ctx.args["gains"]]
    return [compare_gains(x, y, metric) for x, y in zip(pairs, pairs[1:])]


def _with_args(claim: Claim, args: dict[str, Any]) -> Claim:
    from dataclasses import replace

    return replace(claim, args=args)


CHECK_FUNCTIONS: dict[str, Callable[[Context], list[Comparison]]] = {
    "diverges_within_epochs": _check_diverges_within_epochs,
    "does_not_learn": _check_does_not_learn,
    "learns": _check_learns,
    "less_than": _check_less_than,
    "order_less_than": _check_order_less_than,
    "approximately_equal": _check_approximately_equal,
    "best_among": _check_best_among,
    "ratio_concentrated_near_one": _check_ratio_concentrated_near_one,
    "closer_to_one": _check_closer_to_one,
    "monotone_with_depth": _check_monotone_with_depth,
    "all_finite": _check_all_finite,
    "all_positive": _check_all_positive,
    "gain_shrinks": _check_gain_shrinks,
}
assert set(CHECK_FUNCTIONS) == set(CHECKS), "every check of the vocabulary has an implementation"


# ----------------------------------------------------------------------------------------------- claims


def claim_subjects(claim: Claim) -> list[dict[str, Any]]:
    """Every subject the check reads, including the baselines of ``train_time_overhead``."""
    subjects = claim.subjects()
    if claim.args.get("metric") == "train_time_overhead":
        for s in list(subjects):
            base = _baseline(s)
            if base not in subjects:
                subjects.append(base)
    return subjects


def protocol_differences(claim: Claim, runs_of: Mapping[str, list[Run]], subjects: list[dict]) -> list[str]:
    """How our runs' protocol differs from the claim's, subject by subject, with the same check as the
    numbers (:func:`normbench.verdicts.protocol.protocol_differences`)."""
    diffs: list[str] = []
    for s in subjects:
        runs = runs_of[_key(s)]
        if not runs:
            continue
        want = subject_dataset(s, claim.dataset)
        for d in check_protocol(
            runs, dataset=want, epochs=claim.epochs, runs_wanted=claim.runs, recipe=claim.recipe_for(want)
        ):
            if d not in diffs:
                diffs.append(d)
    return diffs


def _restrict_to_dataset(args: Any, dataset: str, default: str) -> Any:
    """The claim's arguments with only the subjects measured on ``dataset`` (None when none is left): a list
    of subjects keeps those subjects; a chain (under ``chains``) or a single subject (``a``, ``b``) that is
    measured elsewhere drops out, since it compares across data sets."""

    def on(x: Any) -> bool:
        return isinstance(x, dict) and "model" in x and subject_dataset(x, default) == dataset

    def subjects(xs: list) -> list:
        return [x for x in xs if on(x)]

    out: dict[str, Any] = {}
    for key, value in args.items():
        if key == "chains":
            value = [c for c in value if len(subjects(c)) == len(c)]
        elif isinstance(value, list) and value and all(isinstance(x, dict) and "model" in x for x in value):
            value = subjects(value)
        elif isinstance(value, dict) and "model" in value:
            value = value if on(value) else None
        if value is None or value == []:
            return None
        out[key] = value
    return out


def per_dataset_verdicts(claim: Claim, runs: list[Run]) -> str:
    """For a claim whose subjects span several data sets: each data set's verdict, from the claim restricted
    to the subjects measured on it (``mnist: REPRODUCED; cifar10: NOT RUN``); empty for one data set. The
    claim's own verdict needs every part measured."""
    datasets = list(dict.fromkeys(subject_dataset(s, claim.dataset) for s in claim.subjects()))
    if len(datasets) < 2:
        return ""
    parts = []
    for ds in datasets:
        args = _restrict_to_dataset(claim.args, ds, claim.dataset)
        if not args:
            continue
        sub = _with_args(claim, args)
        sub = replace(sub, dataset=ds)
        parts.append(f"{ds}: {evaluate_claim(sub, runs)['verdict']}")
    return "; ".join(parts)


def evaluate_claim(claim: Claim, runs: list[Run]) -> dict[str, Any]:
    """One row of :func:`evaluate_claims` (see the module docstring for the rules)."""
    if claim.check not in CHECK_FUNCTIONS:
        raise ValueError(f"{claim.key}: unknown check {claim.check!r}; valid: {', '.join(CHECKS)}")
    subjects = claim_subjects(claim)
    runs_of = {_key(s): subject_runs(s, runs, claim.table_key, claim.dataset) for s in subjects}
    row: dict[str, Any] = {
        "id": claim.key,
        "paper": claim.paper,
        "claim": claim.id,
        "table": claim.label,
        "section": claim.section,
        "statement": claim.statement,
        "check": claim.check,
        "subjects": "; ".join(subject_label(s) for s in subjects),
        "measured": "",
        "outcome": "",
        "holds_on_proxy": None,
        "verdict": NOT_RUN,
        "protocol_differences": "",
        "runs": len({id(r) for v in runs_of.values() for r in v}),
        "per_dataset": per_dataset_verdicts(claim, runs),
        "note": claim.note,
        "comparisons": "[]",
    }
    if claim.config_only:
        row["measured"] = f"{claim.label}: {claim.dataset}, configuration only (not run here)"
        return row
    metric = claim.args.get("metric")
    if metric is not None and metric not in METRICS:
        row["measured"] = f"metric {metric!r} is not computed by normbench.verdicts.claims"
        row["outcome"] = INCONCLUSIVE
        row["verdict"] = INCONCLUSIVE
        return row
    comparisons = CHECK_FUNCTIONS[claim.check](Context(claim, runs_of))
    missing = [subject_label(s) for s in subjects if not runs_of[_key(s)]]
    measured = [c.text for c in comparisons if c.outcome != NOT_RUN]
    if missing:
        measured.append("not run: " + ", ".join(missing))
    row["measured"] = "; ".join(measured)
    row["comparisons"] = json.dumps([c.to_dict() for c in comparisons])
    if missing:
        return row
    outcome = combine(c.outcome for c in comparisons)
    diffs = protocol_differences(claim, runs_of, subjects)
    row["outcome"] = outcome
    row["protocol_differences"] = "; ".join(diffs)
    if diffs:
        row["verdict"] = PROXY
        row["holds_on_proxy"] = {PASS: True, FAIL: False}.get(outcome)
    else:
        row["verdict"] = OUTCOME_VERDICT[outcome]
    return row


def evaluate_claims(claims: list[Claim], runs: list[Run]) -> pd.DataFrame:
    """One row per claim, in claim order: what we measured, the check's outcome and the verdict.

    Columns: ``id`` (``<paper>/<claim id>``), ``paper``, ``claim``, ``table`` (the table or figure label),
    ``section``, ``statement``, ``check``, ``subjects`` (labels, ``; ``-separated), ``measured`` (one line per
    comparison), ``outcome`` (PASS / FAIL / INCONCLUSIVE on our runs, empty when NOT RUN),
    ``holds_on_proxy`` (True / False / None, PROXY rows only), ``verdict`` (NOT RUN / PROXY / REPRODUCED /
    DEVIATES / INCONCLUSIVE), ``protocol_differences``, ``runs`` (runs matched over all subjects), ``note``
    (the claim's judgement calls) and ``comparisons`` (JSON list of ``{what, outcome, text}``).
    The rules (run matching, 2-SE intervals, diverged runs) are in the module docstring.
    """
    return pd.DataFrame([evaluate_claim(c, runs) for c in claims], columns=COLUMNS)


# ---------------------------------------------------------------------------------------------- output


def claim_verdict_counts(df: pd.DataFrame) -> pd.DataFrame:
    """Claim verdict counts per paper (rows) and verdict (columns)."""
    if df.empty:
        return pd.DataFrame(columns=["paper", *VERDICTS])
    counts = pd.crosstab(df["paper"], df["verdict"]).reindex(columns=list(VERDICTS), fill_value=0)
    return counts.reset_index()


def display_rows(df: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the human-readable claims table."""
    headers = ["paper", "table", "claim", "statement", "check", "measured", "verdict", "protocol differences"]
    rows = [
        [
            r["paper"],
            r["table"],
            r["claim"],
            r["statement"],
            r["check"],
            r["measured"],
            _verdict_text(r),
            r["protocol_differences"] if isinstance(r["protocol_differences"], str) else "",
        ]
        for r in df.to_dict("records")
    ]
    return headers, rows


def _verdict_text(row: Mapping[str, Any]) -> str:
    """The verdict, with what the check gives on the proxy runs for a PROXY row, and the verdict per data
    set of a claim over several."""
    per = row.get("per_dataset")
    per = f" [{per}]" if isinstance(per, str) and per else ""
    return _overall_text(row) + per


def _overall_text(row: Mapping[str, Any]) -> str:
    if row["verdict"] != PROXY:
        return row["verdict"]
    holds = row.get("holds_on_proxy")
    if isinstance(holds, str):
        holds = {"True": True, "False": False}.get(holds)
    if holds is None or (isinstance(holds, float) and math.isnan(holds)):
        return "PROXY (inconclusive on proxy)"
    return f"PROXY ({'holds' if holds else 'fails'} on proxy)"


def write_claims(df: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """``claims.csv`` (machine), ``claims.md`` (human) and ``claims.json`` in ``out_dir``."""
    df = df.reindex(columns=COLUMNS)
    records = json.loads(df.to_json(orient="records"))
    for r in records:
        r["comparisons"] = json.loads(r["comparisons"] or "[]")
    legend = [
        "# Qualitative claims of the papers",
        "",
        "Verdicts: REPRODUCED (the claim holds on our runs), DEVIATES (it fails), INCONCLUSIVE (too few",
        "runs, or the 95 % Student-t interval covers both outcomes), PROXY (our protocol differs from the",
        "claim's: never a reproduction; whether the claim holds on the proxy runs is in brackets), NOT RUN",
        "(some subject has no run). Rules per check: `normbench.verdicts.claims` and `docs/references.md`.",
    ]
    return write_verdict_files(
        out_dir, "claims", df, records, legend, claim_verdict_counts(df), display_rows(df)
    )


def strict_failures(df: pd.DataFrame) -> pd.DataFrame:
    """Claims that fail ``--strict``: a non-PROXY claim that DEVIATES."""
    return df[df["verdict"] == DEVIATES]
