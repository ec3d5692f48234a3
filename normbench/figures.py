"""Figures drawn from run logs alone (seaborn): training curves, mean and spread (± 1 std) over seeds."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from normbench.runs import Run  # noqa: E402


def curves_frame(runs: list[Run]) -> pd.DataFrame:
    """Long table of epoch records: one row per (run, epoch, split) with loss and error."""
    rows = []
    for run in runs:
        variant = run.config["model"] + ("" if run.config["method"] == "none" else f"+{run.config['method']}")
        for r in run.records:
            if r.get("kind") != "epoch":
                continue
            for split in ("train", "test"):
                rows.append(
                    {
                        "experiment": run.config["experiment"],
                        "variant": variant,
                        "seed": run.config["seed"],
                        "epoch": r["epoch"],
                        "split": split,
                        "loss": r[f"{split}_loss"],
                        "error": r[f"{split}_error"],
                    }
                )
    return pd.DataFrame(rows)


def plot_curves(runs: list[Run], out_stem: str | Path, title: str = "") -> list[Path]:
    """Loss and error per epoch (solid: test, dashed: train) for every variant; writes PNG and PDF."""
    df = curves_frame(runs)
    out_stem = Path(out_stem)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    sns.set_theme(style="whitegrid", context="paper")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, (col, label) in zip(
        axes, (("error", "classification error (%)"), ("loss", "cross-entropy loss"))
    ):
        if df.empty:
            ax.text(0.5, 0.5, "no completed epochs", ha="center", va="center", transform=ax.transAxes)
        else:
            sns.lineplot(
                data=df,
                x="epoch",
                y=col,
                hue="variant",
                style="split",
                style_order=["test", "train"],
                errorbar="sd",
                ax=ax,
                marker="o",
                markersize=3,
            )
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        if col == "loss" and not df.empty:
            ax.set_yscale("log")
    if not df.empty:
        axes[0].get_legend().remove()
        axes[1].legend(loc="upper right", fontsize=7)
    seeds = df.groupby("variant")["seed"].nunique().max() if not df.empty else 0
    fig.suptitle(f"{title}  (mean ± 1 std over {seeds} seeds; solid test, dashed train)")
    fig.tight_layout()
    paths = [out_stem.with_suffix(".png"), out_stem.with_suffix(".pdf")]
    for p in paths:
        fig.savefig(p, dpi=150)
    plt.close(fig)
    return paths
