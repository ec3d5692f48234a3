"""Figures drawn from run logs alone (seaborn, PNG and PDF), in the papers' layouts. One builder per kind:

- :func:`plot_curves`: training curves (Zaeemzadeh Fig. 4, Jia Fig. 2, Oyedotun Figs. 3-4, Xie Fig. 5). Rows:
  classification error (%) and cross-entropy loss (log axis by default); columns: one panel per network depth
  (the registry's ``depth`` of each run's model) when the runs span several depths, as the papers draw them;
  colour: the variant (architecture and method, the depth left out when it is the panel); line style: test
  (solid) and train (dotted, as Zaeemzadeh Fig. 4). Each line is the mean over seeds, the shaded band the
  spread over seeds: ``sd`` (mean ± 1 std) or ``range`` (min-max); the figure's title says which.
- :func:`plot_fig2_grid`: Zaeemzadeh Fig. 2, heat maps of the gradient-norm ratio of the 3x3 Conv-ReLU layer
  over the (c, d) grid, one panel per method ("with projection" first, as the paper's panel (a)), each cell
  the mean over runs, and the CSV of every cell (:func:`fig2_grid_frame`).

The layout options come from the experiment's ``figure:`` block of the configuration (schema:
``workflow/schemas/config.schema.yaml``), never from experiment names: :data:`LAYOUT_DEFAULTS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from normbench.probes._common import as_float  # noqa: E402
from normbench.runs import Run  # noqa: E402

# The experiment's `figure:` block: panels (auto: one column per depth when the runs have several; depth:
# always by depth; none: one column), spread over seeds (sd: ± 1 std; range: min-max), loss axis scale, the
# splits drawn (Oyedotun Figs. 3-4 show training curves only) and the depth a model is drawn under (e.g.
# ProcResNet-22 in Zaeemzadeh's column "20").
LAYOUT_DEFAULTS: dict[str, Any] = {
    "panels": "auto",
    "spread": "sd",
    "loss_scale": "log",
    "splits": ["test", "train"],
    "depths": {},
}
SPREADS = {"sd": ("sd", "mean ± 1 std"), "range": (("pi", 100), "min–max")}
SPLIT_STYLE = {
    "test": "",
    "train": (1.5, 1.5),
}  # seaborn dashes: test solid, train dotted (Zaeemzadeh Fig. 4)
SPLIT_LINE = {"test": "-", "train": ":"}
METRIC_AXES = (("error", "classification error (%)"), ("loss", "cross-entropy loss (nats)"))


def layout_options(layout: Mapping[str, Any] | None) -> dict[str, Any]:
    """``layout`` over :data:`LAYOUT_DEFAULTS`; unknown keys are an error."""
    unknown = set(layout or {}) - set(LAYOUT_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown figure option(s) {sorted(unknown)}; valid: {', '.join(LAYOUT_DEFAULTS)}")
    return {**LAYOUT_DEFAULTS, **(layout or {})}


def save_figure(fig, out_stem: str | Path, title: str = "") -> list[Path]:
    """Give ``fig`` its title, write ``<out_stem>.png`` (150 dpi) and ``.pdf``, close it; return the paths."""
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out_stem = Path(out_stem)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [out_stem.with_suffix(".png"), out_stem.with_suffix(".pdf")]
    for p in paths:
        fig.savefig(p, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return paths


def no_data(ax, text: str = "no records") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)


def method_label(cfg: Mapping[str, Any]) -> str:
    """The method of a run, with its options (``svb(eps=0.05)``); empty for ``none``."""
    if cfg["method"] == "none":
        return ""
    opts = cfg.get("method_options") or {}
    parts = [
        part
        + ("(" + ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in kv.items()) + ")")
        if (kv := opts.get(part))
        else part
        for part in cfg["method"].split("+")
    ]
    return "+".join(parts)


def model_depth(cfg: Mapping[str, Any], depths: Mapping[str, int] | None = None) -> int | None:
    """The depth a run is drawn under: ``depths[model]``, else the registry's ``depth``, else ``None``."""
    from normbench.models import UnknownModelError, get_model_info

    if depths and cfg["model"] in depths:
        return int(depths[cfg["model"]])
    try:
        return get_model_info(cfg["model"]).depth
    except UnknownModelError:
        return None


def curves_frame(runs: list[Run], depths: Mapping[str, int] | None = None) -> pd.DataFrame:
    """Long table of epoch records: one row per (run, epoch, split) with depth, model, method, loss and error."""
    rows = []
    for run in runs:
        cfg = run.config
        depth, own = model_depth(cfg, depths), model_depth(cfg)
        family = cfg["model"].replace(str(own), "", 1).strip("_") if own is not None else cfg["model"]
        for r in run.records:
            if r.get("kind") != "epoch":
                continue
            for split in ("train", "test"):
                rows.append(
                    {
                        "experiment": cfg["experiment"],
                        "model": cfg["model"],
                        "family": family,
                        "method": method_label(cfg),
                        "depth": depth,
                        "seed": cfg["seed"],
                        "epoch": r["epoch"],
                        "split": split,
                        "loss": r[f"{split}_loss"],
                        "error": r[f"{split}_error"],
                    }
                )
    return pd.DataFrame(rows)


def _variant(name: str, method: str) -> str:
    return name + (f" + {method}" if method else "")


def plot_curves(
    runs: list[Run], out_stem: str | Path, title: str = "", layout: Mapping[str, Any] | None = None
) -> list[Path]:
    """Error and loss per epoch, one column per depth (see the module docstring); writes PNG and PDF."""
    opts = layout_options(layout)
    df = curves_frame(runs, opts["depths"])
    if not df.empty:
        df = df[df["split"].isin(opts["splits"])]
    depths = sorted(d for d in df["depth"].dropna().unique()) if not df.empty else []
    by_depth = opts["panels"] == "depth" or (opts["panels"] == "auto" and len(depths) > 1)
    if not df.empty:
        # the hue: the model, its depth digits dropped when the depth is the panel, and the method
        df["variant"] = [_variant(m, k) for m, k in zip(df["family" if by_depth else "model"], df["method"])]
        df["panel"] = df["depth"] if by_depth else 0
    panels = depths if by_depth else [0]
    errorbar, spread_text = SPREADS[opts["spread"]]
    variants = list(dict.fromkeys(df["variant"])) if not df.empty else []
    palette = dict(zip(variants, sns.color_palette("colorblind", max(1, len(variants)))))
    sns.set_theme(style="whitegrid", context="paper")
    fig, axes = plt.subplots(
        len(METRIC_AXES),
        len(panels),
        figsize=(3.4 * len(panels) + 1.8, 5.6),
        squeeze=False,
        sharex=True,
        sharey="row",
    )
    for col, panel in enumerate(panels):
        sub = df[df["panel"] == panel] if not df.empty else df
        for row, (metric, label) in enumerate(METRIC_AXES):
            ax = axes[row][col]
            if sub.empty:
                no_data(ax, "no completed epochs")
            else:
                sns.lineplot(
                    data=sub,
                    x="epoch",
                    y=metric,
                    hue="variant",
                    hue_order=[v for v in variants if v in set(sub["variant"])],
                    palette=palette,
                    style="split",
                    style_order=[s for s in ("test", "train") if s in opts["splits"]],
                    dashes=SPLIT_STYLE,
                    estimator="mean",
                    errorbar=errorbar,
                    ax=ax,
                    legend=False,
                )
                if metric == "loss" and opts["loss_scale"] == "log":
                    ax.set_yscale("log")
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
            ax.set_xlabel("epoch" if row == len(METRIC_AXES) - 1 else "")
            ax.set_ylabel(label if col == 0 else "")
            if row == 0 and by_depth:
                ax.set_title(f"depth {int(panel)}")
    handles = [plt.Line2D([], [], color=palette[v], lw=2) for v in variants]
    handles += [plt.Line2D([], [], color="0.3", ls=SPLIT_LINE[s]) for s in opts["splits"]]
    labels = [*variants, *opts["splits"]]
    if handles:
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, frameon=False)
    seeds = int(df.groupby("variant")["seed"].nunique().max()) if not df.empty else 0
    proxy = any(r.config.get("arch", r.config["model"]) != r.config["model"] for r in runs)
    caption = f"line: mean over {seeds} seeds, band: {spread_text} over seeds"
    if proxy:
        caption += "; PROXY stand-in networks"
    return save_figure(fig, out_stem, f"{title}\n{caption}" if title else caption)


# ----------------------------------------------------------------------------- Zaeemzadeh et al., Fig. 2


def fig2_grid_frame(runs: list[Run]) -> pd.DataFrame:
    """One row per (method, c, d) of the Fig. 2 study's runs: the ratio of the 3x3 Conv-ReLU layer at the last
    probe record (the paper's 10th epoch), mean, std, min and max over runs, and the number of runs.

    Each run of the study (:mod:`normbench.fig2`) holds one ``grad_norm_ratio`` record per grid cell, with
    ``c`` and ``d``; the CSV of the figure is this frame.
    """
    rows = []
    for run in runs:
        last = None
        for rec in run.records:
            if rec.get("kind") == "probe" and "grad_norm_ratio" in rec.get("probes", {}):
                last = rec
        for cell in (last or {}).get("probes", {}).get("grad_norm_ratio", []):
            if "c" not in cell:
                continue
            rows.append(
                {
                    "method": run.config["method"],
                    "c": int(cell["c"]),
                    "d": int(cell["d"]),
                    "epoch": last["epoch"],
                    "seed": run.config["seed"],
                    "ratio": as_float(cell["ratio"]),
                }
            )
    df = pd.DataFrame(rows, columns=["method", "c", "d", "epoch", "seed", "ratio"])
    if df.empty:
        return pd.DataFrame(columns=["method", "c", "d", "epoch", "runs", "mean", "std", "min", "max"])
    stats = df.groupby(["method", "c", "d", "epoch"], sort=True)["ratio"].agg(
        runs="count", mean="mean", std="std", min="min", max="max"
    )
    return stats.reset_index()


def _panel_title(method: str) -> str:
    return "without projection" if method == "none" else f"with projection ({method})"


def plot_fig2_grid(
    runs: list[Run], out_stem: str | Path, title: str = "", layout: Mapping[str, Any] | None = None
) -> list[Path]:
    """Zaeemzadeh Fig. 2: one heat map per method (projected first), rows c (input channels of the 3x3 conv),
    columns d (its output channels), colour and annotation the mean ratio over runs on a log scale centred on
    1 (norm preserving). Writes ``<out_stem>.png``, ``.pdf`` and the cell table ``.csv``. The layout is the
    paper's; ``layout`` (the curves' options) is accepted for a uniform signature and not used."""
    df = fig2_grid_frame(runs)
    out_stem = Path(out_stem)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out_stem.with_suffix(".csv"), index=False)
    methods = sorted(df["method"].unique(), key=lambda m: (m == "none", m)) if not df.empty else ["none"]
    finite = df["mean"][np.isfinite(df["mean"]) & (df["mean"] > 0)] if not df.empty else pd.Series([])
    span = max(abs(math.log10(v)) for v in finite) if len(finite) else 1.0
    span = max(span, 0.05)
    sns.set_theme(style="white", context="paper")
    fig, axes = plt.subplots(1, len(methods), figsize=(4.6 * len(methods), 4.2), squeeze=False)
    for letter, ax, method in zip("abcdefgh", axes[0], methods):
        sub = df[df["method"] == method]
        if sub.empty:
            no_data(ax, "no Fig. 2 records")
        else:
            mean = sub.pivot(index="c", columns="d", values="mean").sort_index(ascending=False)
            sns.heatmap(
                np.log10(mean.where(mean > 0)),
                annot=mean,
                fmt=".2f",
                cmap="RdBu_r",
                center=0.0,
                vmin=-span,
                vmax=span,
                square=True,
                cbar_kws={"label": "log10 ratio (0: norm preserving)"},
                ax=ax,
            )
        ax.set_xlabel("d (output channels of the 3x3 conv)")
        ax.set_ylabel("c (input channels of the 3x3 conv)")
        ax.set_title(f"({letter}) {_panel_title(method)}")
    runs_n = int(df["runs"].max()) if not df.empty else 0
    epoch = int(df["epoch"].max()) if not df.empty else 0
    caption = (
        rf"ratio $\|\partial E/\partial x_{{l+1}}\| \,/\, \|\partial E/\partial x_l\|$ of the Conv-ReLU layer at epoch {epoch}, "
        f"mean over {runs_n} runs (annotated; colour: log10)"
    )
    return save_figure(fig, out_stem, f"{title}\n{caption}" if title else caption)


# name -> builder(runs, out_stem, title, layout): the figure kinds of `normbench figures --figure NAME`
FIGURES: dict[str, Callable[..., list[Path]]] = {"curves": plot_curves, "fig2_grid": plot_fig2_grid}
