"""Tables built from run logs alone: per experiment, one row per (model, method), mean +- std over seeds.

Each table is written as Markdown (GitHub style), CSV (one column per statistic, machine-readable) and LaTeX.
A diverged run counts in ``diverged`` and is left out of the error statistics (it has no final error). A run
with an unhealthy evaluation (an ``eval_health`` record: a non-finite or absurd test loss) counts in
``eval unhealthy``; its numbers stay in the statistics, as logged.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from normbench.runs.folder import METRICS, Run
from normbench.verdicts.formatting import mean_std
from normbench.verdicts.statistics import sample_stats

LABELS = {
    "final_test_error": "test error (%)",
    "best_test_error": "best test error (%)",
    "final_train_error": "train error (%)",
    "gap_mean": "gap mean (pp)",
    "gap_max": "gap max (pp)",
    "final_test_loss": "test loss",
    "epoch_train_seconds": "train s/epoch",
}


def aggregate(runs: list[Run]) -> pd.DataFrame:
    """One row per (experiment, model, method): runs, diverged runs, runs with an unhealthy evaluation
    (``eval_unhealthy``), and mean/std/n of every metric."""
    groups: dict[tuple[str, str, str], list[Run]] = defaultdict(list)
    for run in runs:
        groups[run.key].append(run)
    rows = []
    for (exp, model, method), group in groups.items():
        row = {  # every metric of normbench.runs.folder.METRICS gets mean/std/n columns in the CSV
            "experiment": exp,
            "model": model,
            "arch": group[0].config.get("arch", model),
            "method": method,
            "dataset": group[0].config["dataset"],
            "runs": len(group),
            "diverged": sum(r.summary["diverged"] for r in group),
            "eval_unhealthy": sum(r.summary["eval_unhealthy"] > 0 for r in group),
            "epochs": max(r.summary["epochs"] for r in group),
        }
        for metric in METRICS:
            m, s, n = sample_stats([r.summary[metric] for r in group])
            row.update({f"{metric}_mean": m, f"{metric}_std": s, f"{metric}_n": n})
        rows.append(row)
    return pd.DataFrame(rows)


def display_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Human-readable columns: model, method, runs, diverged, eval unhealthy (0 for a table written before
    the column existed), then 'mean ± std' per metric."""
    out = df[["model", "method", "dataset", "epochs", "runs", "diverged"]].copy()
    out["eval unhealthy"] = df.get("eval_unhealthy", 0)
    if "arch" in df and (df["arch"] != df["model"]).any():  # proxy runs: say what was built
        out["model"] = [m if a == m else f"{m} (as {a})" for m, a in zip(df["model"], df["arch"])]
    for metric, label in LABELS.items():
        out[label] = [
            mean_std(m, s, 3 if "loss" in metric else 2)
            for m, s in zip(df[f"{metric}_mean"], df[f"{metric}_std"])
        ]
    return out


def write_tables(runs: list[Run], out_dir: str | Path) -> list[Path]:
    """Write ``<experiment>.md``, ``.csv`` and ``.tex`` for every experiment in ``runs``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    df = aggregate(runs)
    for exp, sub in df.groupby("experiment", sort=False):
        sub = sub.reset_index(drop=True)
        shown = display_frame(sub)
        sub.to_csv(out_dir / f"{exp}.csv", index=False)
        headers = list(shown.columns)
        md = tabulate(shown.values.tolist(), headers=headers, tablefmt="github")
        (out_dir / f"{exp}.md").write_text(f"## {exp}\n\nMean ± std over seeds; n = runs.\n\n{md}\n")
        (out_dir / f"{exp}.tex").write_text(
            tabulate(shown.values.tolist(), headers=headers, tablefmt="latex")
        )
        written += [out_dir / f"{exp}.{ext}" for ext in ("md", "csv", "tex")]
    return written
