"""Paper vs ours: one row per reference number, with the tolerance rule and a verdict.

Verdicts, checked in this order:

- ``NOT RUN``: no run of this configuration reproduces the reference's table with its model and method.
- ``PROXY``: runs exist but their protocol differs from the paper's (data set, epochs, or fewer seeds than the
  paper's runs). Ours and the delta are shown for information, never called a reproduction.
- ``INCONCLUSIVE``: protocol matches, but fewer than 2 finished runs, so no spread can be estimated.
- ``REPRODUCED``: |ours - paper| <= tolerance.
- ``DEVIATES``: |ours - paper| > tolerance.

Tolerance rule (stated per metric in :data:`TOLERANCE` and shown in every row):
``tol = max(floor, k * s / sqrt(n))`` with ``s`` the sample std over our n runs and ``k = 2`` (about a 95%
interval on our mean). The absolute floor stops a lucky low spread from failing a faithful run on a difference
no paper reports digits for (errors are printed to 0.01 pp, but seed-to-seed spread on CIFAR is about
0.1-0.3 pp). Statistics are compared like with like: the paper's mean over runs against our mean over runs,
its best of n against our best of n, its max against our max.

A reference printed '-' in the paper (``value: null``, e.g. Plain-164 in Zaeemzadeh Table 1, which diverges)
is REPRODUCED when all our runs diverge too, DEVIATES when any converges.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from statistics import median, stdev
from typing import Any

import pandas as pd
from tabulate import tabulate

from normbench.references import Reference
from normbench.runs import Run
from normbench.tables import stats

VERDICTS = ("REPRODUCED", "DEVIATES", "INCONCLUSIVE", "PROXY", "NOT RUN")
K_SE = 2.0


@dataclass(frozen=True)
class Tolerance:
    floor: float
    higher_is_better: bool = False

    def rule(self) -> str:
        return f"|Δ| ≤ max({self.floor:g}, {K_SE:g}·s/√n)"


TOLERANCE: dict[str, Tolerance] = {
    "final_test_error": Tolerance(0.5),
    "best_test_error": Tolerance(0.5),
    "final_train_error": Tolerance(0.5),
    "final_test_top5_error": Tolerance(0.5),
    "test_accuracy": Tolerance(0.5, higher_is_better=True),
    "train_accuracy": Tolerance(0.5, higher_is_better=True),
    "gap_mean": Tolerance(1.0),
    "gap_max": Tolerance(2.0),
    "gap_fluctuation": Tolerance(2.0),
    "final_test_loss": Tolerance(0.05),
    "diverged_epoch": Tolerance(5.0),
}
DEFAULT_TOLERANCE = Tolerance(0.5)
ABOUT = 0.1  # a number the paper gives as "about" x: our value within 10% of x (and the rule above)
PARAMS_REL = 0.01  # parameter counts: within 1%, or rounding to the printed figure (as tests/test_models.py)


def our_statistic(values: list[float], statistic: str, tol: Tolerance) -> float:
    """Our runs summarised the way the paper summarised its runs (docs/references.md, statistics)."""
    if not values:
        return float("nan")
    if statistic in ("mean", "single", "unstated"):
        return sum(values) / len(values)
    if statistic == "best":
        return max(values) if tol.higher_is_better else min(values)
    if statistic == "max":
        return max(values)
    if statistic == "median":
        return median(values)
    if statistic == "std":
        return stdev(values) if len(values) > 1 else float("nan")
    raise ValueError(f"unknown statistic {statistic!r}")


def protocol_differences(ref: Reference, runs: list[Run]) -> list[str]:
    """How our runs' protocol differs from the paper's (empty when it matches)."""
    cfg = runs[0].config
    diffs = []
    if ref.dataset != cfg["dataset"]:
        diffs.append(f"data set {cfg['dataset']} (paper: {ref.dataset})")
    if ref.epochs is not None and ref.epochs != cfg["epochs"]:
        diffs.append(f"{cfg['epochs']} epochs (paper: {ref.epochs})")
    if cfg.get("arch", cfg["model"]) != cfg["model"]:
        diffs.append(f"architecture {cfg['arch']} in place of {cfg['model']}")
    if ref.runs is not None and len(runs) < ref.runs:
        diffs.append(f"{len(runs)} runs (paper: {ref.runs})")
    return diffs


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


def model_metric(ref: Reference) -> float | None:
    """Quantities of the architecture itself (no runs): parameter count (millions) and depth."""
    from normbench.models import MODELS, build_model, count_params

    info = MODELS.get(ref.model or "")
    if info is None:
        return None
    if ref.metric == "depth":
        return float(info.depth)
    if ref.metric == "params":
        classes = 100 if ref.dataset == "cifar100" else 1000 if ref.dataset == "imagenet" else 10
        channels = 1 if ref.dataset == "mnist" else 3
        return count_params(build_model(info.name, num_classes=classes, in_channels=channels)) / 1e6
    return None


def _row(ref: Reference, tol: Tolerance) -> dict[str, Any]:
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
        "paper_value": ref.value,
        "paper_runs": ref.runs,
        "ours": float("nan"),
        "ours_mean": float("nan"),
        "ours_std": float("nan"),
        "n": 0,
        "diverged": 0,
        "delta": float("nan"),
        "tolerance": float("nan"),
        "rule": tol.rule(),
        "verdict": "NOT RUN",
        "protocol_differences": "",
    }


def _within(ours: float, ref: Reference, tolerance: float) -> bool:
    """The qualifier decides the direction: exact and about are two-sided, bounds one-sided."""
    if ref.qualifier == "upper_bound":
        return ours <= ref.value + tolerance
    if ref.qualifier == "lower_bound":
        return ours >= ref.value - tolerance
    return abs(ours - ref.value) <= tolerance


def compare_model_metric(ref: Reference, row: dict[str, Any]) -> dict[str, Any]:
    ours = model_metric(ref)
    if ours is None:
        row["rule"] = f"{ref.model!r} is not in the model registry"
        return row
    tolerance = 0.0
    if ref.metric == "params":
        decimals = len(repr(float(ref.value)).split(".")[1].rstrip("0"))
        tolerance = max(PARAMS_REL * abs(ref.value), 0.5 * 10.0**-decimals)
    row.update(
        ours=ours,
        ours_mean=ours,
        delta=ours - ref.value,
        tolerance=tolerance,
        n=1,
        rule="rounds to the printed count, or |Δ| ≤ 1%" if ref.metric == "params" else "Δ = 0",
        verdict="REPRODUCED" if _within(ours, ref, tolerance) else "DEVIATES",
    )
    return row


def compare_one(ref: Reference, runs: list[Run]) -> dict[str, Any]:
    """One reference number against the runs that stand for it (see the module docstring for the verdicts)."""
    tol = TOLERANCE.get(ref.metric, DEFAULT_TOLERANCE)
    row = _row(ref, tol)
    if ref.config_only:
        row["rule"] = "configuration only (needs the user's ImageNet)"
        return row
    if ref.value is None and ref.missing != "diverged":
        row["rule"] = f"no paper value ({ref.missing}: {ref.note})"
        return row
    if ref.statistic == "none":
        if ref.metric in ("params", "depth"):
            return compare_model_metric(ref, row)
        row["rule"] = f"metric {ref.metric!r} is not computed by this version"
        return row
    if not runs:
        return row
    if ref.value is not None and ref.metric not in runs[0].summary:
        row["rule"] = f"metric {ref.metric!r} is not computed by this version"
        return row
    diverged = sum(r.summary["diverged"] for r in runs)
    diffs = protocol_differences(ref, runs)
    row.update(diverged=diverged, protocol_differences="; ".join(diffs))
    if ref.value is None:  # printed '-' because training diverged
        row["rule"] = "all runs diverge"
        verdict = "REPRODUCED" if diverged == len(runs) else "DEVIATES"
    else:
        values = [r.summary.get(ref.metric, float("nan")) for r in runs]
        m, s, n = stats(values)
        finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
        ours = our_statistic(finite, ref.statistic, tol)
        tolerance = max(tol.floor, K_SE * s / math.sqrt(n)) if n >= 2 else float("nan")
        if ref.qualifier == "about":
            tolerance = max(tolerance, ABOUT * abs(ref.value))
            row["rule"] = f"{tol.rule()}, or 10% (the paper says 'about')"
        elif ref.qualifier in ("upper_bound", "lower_bound"):
            row["rule"] = (
                "ours ≤ paper" if ref.qualifier == "upper_bound" else "ours ≥ paper"
            ) + " + tolerance"
        row.update(ours=ours, ours_mean=m, ours_std=s, n=n, delta=ours - ref.value, tolerance=tolerance)
        if n < 2 or not math.isfinite(ours):
            verdict = "INCONCLUSIVE"
        else:
            verdict = "REPRODUCED" if _within(ours, ref, tolerance) else "DEVIATES"
    row["verdict"] = "PROXY" if diffs else verdict
    return row


# Metrics relative to a baseline subject: (summary metric, how subject and baseline means combine, floor).
RELATIVE: dict[str, tuple[str, Any, float]] = {
    "train_time_overhead": ("epoch_train_seconds", lambda a, b: 100.0 * (a / b - 1.0), 5.0),
    "test_accuracy_gain": ("test_accuracy", lambda a, b: a - b, 1.0),
}


def compare_relative(
    ref: Reference, runs: list[Run], baseline: list[Run], row: dict[str, Any]
) -> dict[str, Any]:
    """A number relative to ``ref.baseline`` (overhead, gain): f(mean over our runs, mean over the baseline's).

    Tolerance: the metric's floor (5 points for time overheads, which also depend on the device; 1 point for
    accuracy gains). One run of each side suffices for timing; accuracy gains need 2 of each.
    """
    key, combine, floor = RELATIVE[ref.metric]
    row["rule"] = f"|Δ| ≤ {floor:g} (relative to {ref.baseline})"
    if not runs or not baseline:
        row["rule"] += ": no baseline runs" if runs else ""
        return row
    a, _, n_a = stats([r.summary.get(key, float("nan")) for r in runs])
    b, _, n_b = stats([r.summary.get(key, float("nan")) for r in baseline])
    diffs = protocol_differences(ref, runs)
    ours = combine(a, b) if n_a and n_b and b else float("nan")
    row.update(
        ours=ours,
        ours_mean=ours,
        n=min(n_a, n_b),
        delta=ours - ref.value,
        tolerance=floor,
        protocol_differences="; ".join(diffs),
    )
    enough = min(n_a, n_b) >= (1 if ref.metric == "train_time_overhead" else 2)
    verdict = (
        "INCONCLUSIVE"
        if not enough or not math.isfinite(ours)
        else ("REPRODUCED" if _within(ours, ref, floor) else "DEVIATES")
    )
    row["verdict"] = "PROXY" if diffs else verdict
    return row


def compare(references: list[Reference], runs: list[Run]) -> pd.DataFrame:
    """The comparison table: one row per reference entry, in reference order."""
    rows = []
    for ref in references:
        if ref.metric in RELATIVE and ref.baseline and ref.value is not None and not ref.config_only:
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
            row = _row(ref, TOLERANCE.get(ref.metric, DEFAULT_TOLERANCE))
            rows.append(compare_relative(ref, matching_runs(ref, runs), baseline, row))
        else:
            rows.append(compare_one(ref, matching_runs(ref, runs)))
    return pd.DataFrame(rows)


def _num(x: Any, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def display_rows(df: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the human-readable comparison."""
    headers = [
        "paper",
        "table",
        "row",
        "column",
        "statistic",
        "paper",
        "ours (mean ± std)",
        "n",
        "Δ",
        "tolerance rule",
        "verdict",
        "protocol differences",
    ]
    rows = []
    for r in df.to_dict("records"):
        ours = (
            "-"
            if r["n"] == 0 and not r["diverged"]
            else (
                f"{_num(r['ours_mean'])} ± {_num(r['ours_std'])}" if r["n"] else f"{r['diverged']} diverged"
            )
        )
        rows.append(
            [
                r["paper"],
                r["table"],
                r["row"],
                r["column"],
                r["statistic"],
                "'-' (diverges)" if r["paper_value"] is None else _num(r["paper_value"]),
                ours,
                str(r["n"]),
                _num(r["delta"]),
                r["rule"],
                r["verdict"],
                r["protocol_differences"],
            ]
        )
    return headers, rows


def verdict_counts(df: pd.DataFrame) -> pd.DataFrame:
    """Verdict counts per paper (rows) and verdict (columns)."""
    counts = pd.crosstab(df["paper"], df["verdict"]).reindex(columns=list(VERDICTS), fill_value=0)
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
        "Verdicts: REPRODUCED, DEVIATES, INCONCLUSIVE (fewer than 2 runs), PROXY (our protocol differs from",
        "the paper's: never a reproduction), NOT RUN. Rule per row: see `normbench.compare`.",
    ]
    records = json.loads(df.to_json(orient="records"))
    return write_verdict_files(
        out_dir, "comparison", df, records, legend, verdict_counts(df), display_rows(df)
    )


def strict_failures(df: pd.DataFrame) -> pd.DataFrame:
    """Rows that fail ``--strict``: a non-PROXY row that DEVIATES."""
    return df[df["verdict"] == "DEVIATES"]
