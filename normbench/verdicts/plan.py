"""Can the planned runs decide? For each paper number and claim a configuration plans, the runs it will
train and whether they can give a verdict other than INCONCLUSIVE.

A number with n planned runs is decidable when n >= 2 and the expected half-width of its interval,
``t_{0.975, n-1} · sigma / sqrt(n)``, is at most its floor f (:mod:`normbench.verdicts.numbers`). ``sigma`` is the
seed-to-seed std the paper states for the same model and table (a ``std`` row) where there is one, else the
assumption ``sigma = f / 2`` (the floors are set at about twice the usual seed-to-seed std of the metric).
``runs_needed`` is the smallest n that would make it decidable under the same sigma. A time overhead is a
point decision (one run suffices). A claim is decidable when every subject it reads has at least 2 planned
runs; with 2, only a large effect can pass (t at 1 degree of freedom is 12.7). A number or claim read from a
probe (:data:`normbench.verdicts.values.PROBE_OF`) is not decidable when an experiment that trains one of its
subjects does not record that probe (``missing_probe`` names it): its runs would have no value.
"""

from __future__ import annotations

import math
from typing import Any

from normbench.verdicts.metrics import NOT_EVALUATED, RELATIVE, STRUCTURE, metric_info
from normbench.verdicts.statistics import t_quantile
from normbench.verdicts.values import PROBE_OF


def _experiments(config: dict, table_key: str, model: str | None, method: str, dataset: str) -> list[dict]:
    """The experiments that reproduce ``table_key`` and train (model, method) on ``dataset`` (an experiment's
    ``paper_dataset`` where it stands in for one)."""
    return [
        exp
        for exp in config["experiments"].values()
        if table_key in exp.get("reproduces", [])
        and model in exp["models"]
        and method in exp["methods"]
        and (exp.get("paper_dataset") or exp["dataset"]) == dataset
    ]


def _planned(config: dict, table_key: str, model: str | None, method: str, dataset: str) -> int:
    """Seeds the configuration trains of (model, method) on ``dataset`` for ``table_key``."""
    return sum(len(exp["seeds"]) for exp in _experiments(config, table_key, model, method, dataset))


def _missing_probe(config: dict, table_key: str, subjects: list[tuple], metric: str | None) -> str:
    """The probe ``metric`` is read from when an experiment training one of ``subjects`` (model, method,
    dataset) does not record it, else ``""``."""
    probe = PROBE_OF.get(metric or "")
    if probe is None:
        return ""
    for model, method, dataset in subjects:
        for exp in _experiments(config, table_key, model, method, dataset):
            recorded = set((exp.get("probes") or {}).get("names") or [])
            if exp.get("grid"):  # the Fig. 2 study records its probe layer's ratio itself
                recorded.add("grad_norm_ratio")
            if probe not in recorded:
                return probe
    return ""


def _half_width(sigma: float, n: int) -> float:
    return t_quantile(n - 1) * sigma / math.sqrt(n) if n >= 2 else math.inf


def runs_needed(sigma: float, floor: float, cap: int = 1000) -> int | None:
    """The smallest n with ``t_{n-1} sigma / sqrt(n) <= floor`` (None beyond ``cap``)."""
    for n in range(2, cap + 1):
        if _half_width(sigma, n) <= floor:
            return n
    return None


def plan_numbers(config: dict, references: list) -> list[dict[str, Any]]:
    """One row per trained paper number the configuration plans (module docstring)."""
    stated = {
        (r.table_key, r.model, r.method, r.dataset): r.value
        for r in references
        if r.statistic == "std" and r.value
    }
    rows = []
    for ref in references:
        info = metric_info(ref.metric)
        if ref.config_only or info.kind in (STRUCTURE, NOT_EVALUATED) or ref.statistic == "std":
            continue
        n = _planned(config, ref.table_key, ref.model, ref.method, ref.dataset)
        if not n:
            continue
        floor = info.floor
        key = (ref.table_key, ref.model, ref.method, ref.dataset)
        sigma, source = (stated[key], "paper's std") if key in stated else (floor / 2, "assumed f/2")
        if info.kind == RELATIVE and ref.metric == "train_time_overhead":
            half, need, decidable = 0.0, 1, n >= 1
        else:
            half = _half_width(sigma, n)
            need = runs_needed(sigma, floor)
            decidable = half <= floor
        read_from = info.reduction.metric if info.reduction else None
        missing = _missing_probe(config, ref.table_key, [(ref.model, ref.method, ref.dataset)], read_from)
        rows.append(
            {
                "id": ref.id,
                "planned_runs": n,
                "paper_runs": ref.runs,
                "sigma": sigma,
                "sigma_source": source,
                "expected_half_width": half,
                "floor": floor,
                "decidable": decidable and not missing,
                "runs_needed": need,
                "missing_probe": missing,
            }
        )
    return rows


def plan_claims(config: dict, claims: list) -> list[dict[str, Any]]:
    """One row per claim the configuration plans: the fewest planned runs of any subject it reads."""
    rows = []
    for claim in claims:
        if claim.config_only:
            continue
        subjects = [
            (s.get("model"), s.get("method", "none"), s.get("dataset", claim.dataset))
            for s in claim.subjects()
        ]
        counts = [_planned(config, claim.table_key, *subject) for subject in subjects]
        if not counts or not any(counts):
            continue
        fewest = min(counts)
        missing = _missing_probe(config, claim.table_key, subjects, claim.args.get("metric"))
        rows.append(
            {
                "id": claim.key,
                "fewest_runs": fewest,
                "paper_runs": claim.runs,
                "decidable": fewest >= 2 and not missing,
                "missing_probe": missing,
            }
        )
    return rows
