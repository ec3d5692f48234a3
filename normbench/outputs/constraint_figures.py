"""Figures of a constraint's own recorded state (records other than probes), drawn from run logs alone.

- ``procrustes_state`` (Zaeemzadeh et al. 2020, Sec. 3: the projection makes a transition "norm preserving"):
  per projected layer and epoch, the extreme singular values of its operator over the gain ``g`` that the
  projection targets (``sigma / g``; 1 where the constraint holds), from the ``procrustes_state`` records the
  trainer logs after each epoch (:meth:`normbench.methods.procrustes.Procrustes.state_record`). Two panels: the
  circular operator on the layer's FFT grid (what the projection constrains) and the zero-padded convolution
  the network actually applies; a colour per layer, the maximum solid and the minimum dashed, mean over seeds
  with a band for the spread, a dotted line at 1.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from normbench.outputs.figures import figure_title, mean_band, no_data, save_figure  # noqa: E402
from normbench.runs.folder import Run  # noqa: E402
from normbench.runs.records import as_float  # noqa: E402

OPERATORS = (("circular", "circular operator (FFT grid)"), ("zero_padded", "zero-padded convolution"))


def procrustes_state_frame(runs: list[Run]) -> pd.DataFrame:
    """One row per (run, epoch, layer, operator) of the runs' ``procrustes_state`` records: ``min`` and ``max``
    singular value over the gain (NaN where the record holds none)."""
    rows = []
    for run in runs:
        for rec in run.records:
            if rec.get("kind") != "procrustes_state":
                continue
            for layer, state in rec["layers"].items():
                for op, _ in OPERATORS:
                    rows.append(
                        {
                            "seed": run.config.get("seed"),
                            "model": run.config.get("model"),
                            "epoch": rec["epoch"],
                            "layer": layer.removesuffix(".weight"),
                            "operator": op,
                            "min": as_float(state.get(f"{op}_min")),
                            "max": as_float(state.get(f"{op}_max")),
                        }
                    )
    return pd.DataFrame(rows, columns=["seed", "model", "epoch", "layer", "operator", "min", "max"])


def plot_procrustes_state(runs: list[Run], out_stem: str | Path, title: str = "", layout=None) -> list[Path]:
    """The projected layers' singular values over the gain per epoch (see the module docstring); a run
    without ``procrustes_state`` records (no projection, or ``record_every: 0``) draws "no records"."""
    df = procrustes_state_frame(runs)
    models = list(dict.fromkeys(df["model"])) if not df.empty else []
    df["key"] = [f"{m}: {la}" if len(models) > 1 else la for m, la in zip(df["model"], df["layer"])]
    keys = list(dict.fromkeys(df["key"]))
    palette = dict(zip(keys, sns.color_palette("colorblind", max(1, len(keys)))))
    fig, axes = plt.subplots(1, len(OPERATORS), figsize=(9.0, 3.6), squeeze=False, sharey=True)
    for ax, (op, head) in zip(axes[0], OPERATORS):
        drawn = False
        for key in keys:
            g = df[(df["operator"] == op) & (df["key"] == key)]
            for stat, ls in (("max", "-"), ("min", "--")):
                line = mean_band(
                    ax, g, "epoch", stat, color=palette[key], ls=ls, lw=1.2, label=f"{key} ({stat})"
                )
                drawn = drawn or line is not None
        if drawn:
            ax.axhline(1.0, color="k", lw=0.6, ls=":")
            ax.legend(fontsize=5)
        else:
            no_data(ax)
        ax.set_title(head, fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes[0][0].set_ylabel(r"singular value / gain $\sigma / g$")
    seeds = int(df.groupby("key")["seed"].nunique().max()) if not df.empty else 0
    caption = (
        "extreme singular values of each projected layer's operator over the projection's gain after each epoch "
        f"(max solid, min dashed; mean over {seeds} seeds, band: +-1 std); 1: norm preserving"
    )
    return save_figure(fig, out_stem, f"{figure_title(runs, 'procrustes_state', title)}\n{caption}")
