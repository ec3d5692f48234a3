"""Verdicts of the numerical theorem checks (:mod:`normbench.studies.theory`), with the claims' rules.

A check's measurements come with ``comparisons``; each is judged PASS / FAIL / INCONCLUSIVE, and the check's
outcome is the claims' rule for several comparisons: PASS if all pass, FAIL if any fails, else INCONCLUSIVE.
The outcome maps to a verdict as a claim's does (:data:`normbench.verdicts.claims.OUTCOME_VERDICT`: PASS ->
REPRODUCED, FAIL -> DEVIATES); a check whose premise was deliberately broken (``premise`` other than
``"as stated"``) is never a reproduction: its verdict is NOT EVALUATED, its outcome still shown.

- **A measured number against a band** (``measured`` with ``lower`` and/or ``upper`` and an absolute
  ``tolerance``): deterministic (no sampling), so PASS if ``lower - tolerance <= measured <= upper +
  tolerance``, FAIL otherwise (a violation beyond numerical tolerance); a NaN measurement is INCONCLUSIVE.
- **Samples against a band** (``samples``): the 95 % Student-t interval mean ± t·s/√n at n - 1 degrees of
  freedom (:func:`normbench.verdicts.statistics.t_quantile`), as the claims' *a approximately b*: PASS if the
  interval lies inside the band, FAIL if it lies entirely outside, else INCONCLUSIVE (fewer than 2 samples:
  INCONCLUSIVE).
- **A limit** (``kind: "limit"``, a ``series`` over the statement's range that should tend to 0): PASS when
  its last value is below ``threshold`` and no step rises by more than a factor ``rise``; FAIL when the last
  value is not below the first (by more than 1e-6 relative, numerical noise); else INCONCLUSIVE (the range is too short to show the limit).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from statistics import mean, stdev
from typing import Any

from normbench.verdicts import INCONCLUSIVE, NOT_EVALUATED
from normbench.verdicts.claims import FAIL, OUTCOME_VERDICT, PASS
from normbench.verdicts.statistics import t_quantile

AS_STATED = "as stated"


def judge_comparison(c: Mapping[str, Any]) -> tuple[str, str]:
    """(outcome, measured text) of one comparison (module docstring)."""
    lo, hi = c.get("lower", -math.inf), c.get("upper", math.inf)
    tol = c.get("tolerance", 0.0)
    band = f"[{_g(lo)}, {_g(hi)}]" + (f" ± {tol:.1g}" if tol else "")
    if c.get("kind") == "limit":
        ys = [float(v) for v in c["series"]]
        if not ys or any(math.isnan(v) for v in ys):
            return INCONCLUSIVE, "no values"
        rises = [b / a for a, b in zip(ys, ys[1:]) if a > 0]
        text = f"{_g(ys[0])} -> {_g(ys[-1])} (threshold {_g(c['threshold'])})"
        if ys[-1] >= ys[0] * (1 - 1e-6):
            return FAIL, text
        if ys[-1] < c["threshold"] and all(r <= c.get("rise", math.inf) for r in rises):
            return PASS, text
        return INCONCLUSIVE, text
    if "samples" in c:
        xs = [float(v) for v in c["samples"] if math.isfinite(v)]
        if len(xs) < 2:
            return INCONCLUSIVE, f"{len(xs)} sample(s), band {band}"
        m, half = mean(xs), t_quantile(len(xs) - 1) * stdev(xs) / math.sqrt(len(xs))
        text = f"{_g(m)} ± {_g(half)} (95 % t, n = {len(xs)}), band {band}"
        if lo - tol <= m - half and m + half <= hi + tol:
            return PASS, text
        if m + half < lo - tol or m - half > hi + tol:
            return FAIL, text
        return INCONCLUSIVE, text
    v = float(c["measured"])
    text = f"{_g(v)}, band {band}"
    if math.isnan(v):
        return INCONCLUSIVE, text
    return (PASS if lo - tol <= v <= hi + tol else FAIL), text


def _g(v: float) -> str:
    return "∞" if v == math.inf else "-∞" if v == -math.inf else f"{v:.3g}"


def combine(outcomes: Iterable[str]) -> str:
    """The claims' rule for several comparisons: PASS if all pass, FAIL if any fails, else INCONCLUSIVE."""
    outcomes = list(outcomes)
    if not outcomes:
        return INCONCLUSIVE
    if FAIL in outcomes:
        return FAIL
    return PASS if all(o == PASS for o in outcomes) else INCONCLUSIVE


def judge(result: Mapping[str, Any]) -> dict[str, Any]:
    """The verdict row of one check: key, paper, where, statement, outcome, verdict, a summary of what was
    measured (the worst comparison first) and every comparison with its outcome."""
    judged = []
    for c in result["comparisons"]:
        outcome, text = judge_comparison(c)
        judged.append({"label": c["label"], "outcome": outcome, "measured": text})
    outcome = combine(j["outcome"] for j in judged)
    as_stated = result.get("premise", AS_STATED) == AS_STATED
    verdict = OUTCOME_VERDICT[outcome] if as_stated else NOT_EVALUATED
    failed = [j for j in judged if j["outcome"] == FAIL]
    unsure = [j for j in judged if j["outcome"] == INCONCLUSIVE]
    n_pass = sum(j["outcome"] == PASS for j in judged)
    summary = f"{n_pass} of {len(judged)} comparisons pass"
    first = (failed or unsure or [None])[0]
    if first is not None:
        summary += f"; {first['outcome']}: {first['label']} = {first['measured']}"
    return {
        "key": result["key"],
        "paper": result["paper"],
        "where": result["where"],
        "statement": result["statement"],
        "construction": result.get("construction", ""),
        "premise": result.get("premise", AS_STATED),
        "scale": result.get("scale"),
        "outcome": outcome,
        "verdict": verdict,
        "summary": summary,
        "comparisons": judged,
    }


def write_verdicts(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """``verdicts.json``: ``{"checks": [row, ...]}`` in check order (non-finite numbers as null)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"checks": rows}, indent=1, allow_nan=False) + "\n")
    return path


def read_verdicts(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a ``verdicts.json`` (empty when there is none)."""
    path = Path(path)
    return json.loads(path.read_text())["checks"] if path.exists() else []
