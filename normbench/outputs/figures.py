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
- :func:`plot_param_efficiency`: Zaeemzadeh Fig. 5, final test error against parameters (millions, counted on
  the meta device for the run's data set), a line per family (ResNet, ProcResNet) through its depths.
- :func:`plot_conv1_filters`: Xie Fig. 6, the first convolution's converged filters, one panel per method (L2
  left, orthonormality right), from the run folder's ``checkpoint.pt`` (the only figure that needs more than
  the metrics log: the log holds no weights).

Every figure is written as ``<stem>.png``, ``.pdf`` and ``.json``: the data each panel drew
(:func:`drawn_panels`: lines, bands, points, heat-map cells, read back from the matplotlib artists) and the
labels that do not fit the figure, so tests and readers check content, not existence. Titles name the paper
figure drawn (:func:`figure_title`, e.g. "Zaeemzadeh et al. 2020, Fig. 3 (proxy: digits)") when the runs'
``reproduces`` lists name one (:data:`PAPER_FIGURES`), else the experiment key. Bands over seeds are clipped to
the metric's range (:func:`mean_band`: errors to [0, 100], positive on log axes).

The layout options come from the experiment's ``figure:`` block of the configuration (schema:
``workflow/schemas/config.schema.yaml``), never from experiment names: :data:`LAYOUT_DEFAULTS`.
"""

from __future__ import annotations

import functools
import json
import math
import re
import textwrap
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.collections
import matplotlib.text
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from normbench.runs.folder import DATASET_SHAPES, Run, summarize  # noqa: E402
from normbench.runs.records import as_float  # noqa: E402

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
# line style: test solid, train dotted (Zaeemzadeh Fig. 4)
SPLIT_LINE = {"test": "-", "train": ":"}
METRIC_AXES = (("error", "classification error (%)"), ("loss", "cross-entropy loss (nats)"))
# the range of each metric: a band (mean ± 1 std) is clipped to it
METRIC_BOUNDS = {"error": (0.0, 100.0), "loss": (0.0, None)}


def layout_options(layout: Mapping[str, Any] | None) -> dict[str, Any]:
    """``layout`` over :data:`LAYOUT_DEFAULTS`; unknown keys are an error."""
    unknown = set(layout or {}) - set(LAYOUT_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown figure option(s) {sorted(unknown)}; valid: {', '.join(LAYOUT_DEFAULTS)}")
    return {**LAYOUT_DEFAULTS, **(layout or {})}


def save_figure(fig, out_stem: str | Path, title: str = "") -> list[Path]:
    """Give ``fig`` its title, write ``<out_stem>.png`` (150 dpi), ``.pdf`` and ``.json`` (what every panel
    drew: :func:`drawn_panels`, and the labels that do not fit the figure), close it; return the paths."""
    if title:  # wrapped to the figure's width (about 0.6 em per character at the title's 12 pt)
        width = max(20, int(fig.get_figwidth() * 72 / (0.6 * 12)))
        fig.suptitle("\n".join(_wrap(line, width) for line in title.split("\n")))
    fig.tight_layout()
    out_stem = Path(out_stem)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [out_stem.with_suffix(".png"), out_stem.with_suffix(".pdf"), out_stem.with_suffix(".json")]
    drawn = {"title": title, "panels": drawn_panels(fig), "outside": labels_outside(fig)}
    for p in paths[:2]:
        fig.savefig(p, dpi=150, bbox_inches="tight")
    paths[2].write_text(json.dumps(drawn, indent=1) + "\n")
    plt.close(fig)
    return paths


def _wrap(line: str, width: int) -> str:
    """``textwrap.fill`` that never breaks inside mathtext (``$...$``)."""
    parts = line.split("$")
    joined = "$".join(p if i % 2 == 0 else p.replace(" ", "\0") for i, p in enumerate(parts))
    return textwrap.fill(joined, width, break_long_words=False, break_on_hyphens=False).replace("\0", " ")


def _finite_list(values) -> list[float | None]:
    """JSON-safe floats: non-finite values (and masked cells) as ``None``."""
    out = []
    for v in np.ma.filled(np.ma.asarray(values, dtype=float).ravel(), np.nan):
        out.append(float(v) if math.isfinite(v) else None)
    return out


def _collections_drawn(ax) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[list[float | None]]]:
    """The collections of ``ax`` in data coordinates: ``bands`` (filled areas: their outline's x and y),
    ``points`` (scatter markers' x and y) and ``cells`` (a heat map's values), as :func:`drawn_panels` lists them."""
    bands, points, cells = [], [], []
    for coll in ax.collections:
        array = coll.get_array()
        if array is not None and isinstance(coll, matplotlib.collections.QuadMesh):
            cells.append(_finite_list(array))
            continue
        offsets = np.asarray(coll.get_offsets())
        if isinstance(coll, matplotlib.collections.PathCollection) and len(offsets):
            points.append({"x": _finite_list(offsets[:, 0]), "y": _finite_list(offsets[:, 1])})
            continue
        for path in coll.get_paths():
            if len(path.vertices):
                bands.append({"x": _finite_list(path.vertices[:, 0]), "y": _finite_list(path.vertices[:, 1])})
    return bands, points, cells


def drawn_panels(fig) -> list[dict[str, Any]]:
    """What each panel of ``fig`` (its axes other than colour bars) drew, in data coordinates: ``lines`` (data
    lines; reference lines such as ``axhline`` are left out), ``bands`` (filled areas: their outline's y
    values, e.g. a ± 1 std band or a histogram's steps), ``points`` (scatter markers), ``cells`` (a heat
    map's values), ``images`` (an image's shape and values, e.g. Xie Fig. 6's filters), ``annotations``
    (labels of points) and ``notes`` (other texts, such as "no records"), with the panel's title, labels and
    scales."""
    panels = []
    for ax in fig.axes:
        if hasattr(ax, "_colorbar"):
            continue
        lines = []
        for line in ax.get_lines():
            if line.get_transform() != ax.transData:
                continue  # axhline/axvline: drawn in axes coordinates, not data
            lines.append(
                {
                    "label": str(line.get_label()),
                    "x": _finite_list(line.get_xdata()),
                    "y": _finite_list(line.get_ydata()),
                }
            )
        bands, points, cells = _collections_drawn(ax)
        images = [
            {"shape": list(np.shape(im.get_array())), "values": _finite_list(im.get_array())}
            for im in ax.images
        ]
        annotations = [t.get_text() for t in ax.texts if isinstance(t, matplotlib.text.Annotation)]
        panels.append(
            {
                "title": ax.get_title(),
                "xlabel": ax.get_xlabel(),
                "ylabel": ax.get_ylabel(),
                "xscale": ax.get_xscale(),
                "yscale": ax.get_yscale(),
                "lines": lines,
                "bands": bands,
                "points": points,
                "cells": cells,
                "images": images,
                "annotations": annotations,
                "notes": [
                    t.get_text()
                    for t in ax.texts
                    if not cells and not isinstance(t, matplotlib.text.Annotation)
                ],
            }
        )
    return panels


def panel_values(panel: Mapping[str, Any]) -> list[float]:
    """The finite y values (and heat-map cells, image values) a panel of :func:`drawn_panels` drew."""
    values = [v for kind in ("lines", "bands", "points") for item in panel[kind] for v in item["y"]]
    values += [v for cells in panel["cells"] for v in cells]
    values += [v for image in panel.get("images", []) for v in image["values"]]
    return [v for v in values if v is not None]


def labels_outside(fig) -> list[str]:
    """The axis labels, panel titles and the figure title that do not lie within the figure (clipped)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    texts = [t for ax in fig.axes for t in (ax.title, ax.xaxis.label, ax.yaxis.label)]
    if fig._suptitle is not None:
        texts.append(fig._suptitle)
    out = []
    for t in texts:
        if not t.get_text() or not t.get_visible():
            continue
        ext = t.get_window_extent(renderer)
        if ext.x0 < box.x0 - 1 or ext.y0 < box.y0 - 1 or ext.x1 > box.x1 + 1 or ext.y1 > box.y1 + 1:
            out.append(t.get_text())
    return out


def mean_band(
    ax,
    df: pd.DataFrame,
    x: str,
    y: str,
    spread: str = "sd",
    bounds: tuple[float | None, float | None] = (None, None),
    log: bool = False,
    **line_kw,
):
    """Draw the mean of ``y`` over the rows of each ``x`` (the seeds) as a line and its spread over them as a
    band (``sd``: mean ± 1 std; ``range``: min-max), the band clipped to ``bounds`` (the metric's range, e.g.
    an error in [0, 100]) and, on a log axis, to positive values. Non-finite values are left out; a single
    seed draws no band. Returns the line (``None`` when no value is finite)."""
    df = df[np.isfinite(df[y].astype(float))]
    if log:
        df = df[df[y] > 0]
    if df.empty:
        return None
    stats = df.groupby(x)[y].agg(["mean", "std", "min", "max", "count"]).sort_index()
    line = ax.plot(stats.index, stats["mean"], **line_kw)[0]
    if stats["count"].max() > 1:
        if spread == "range":
            lo, hi = stats["min"], stats["max"]
        else:
            std = stats["std"].fillna(0.0)
            lo, hi = stats["mean"] - std, stats["mean"] + std
        lo, hi = lo.clip(lower=bounds[0], upper=bounds[1]), hi.clip(lower=bounds[0], upper=bounds[1])
        if log:  # a band below 0 on a log axis: its lower edge at a tenth of the smallest mean
            lo = lo.where(lo > 0, stats["mean"].min() / 10)
        ax.fill_between(stats.index, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    return line


# The paper figures each builder draws (the `reproduces` keys of an experiment that name one title it).
PAPER_FIGURES: dict[str, tuple[str, ...]] = {
    "curves": (
        "zaeemzadeh2020/fig4",
        "jia2017/fig2",
        "oyedotun2020/fig3",
        "oyedotun2020/fig4",
        "xie2017/fig5",
    ),
    "fig2_grid": ("zaeemzadeh2020/fig2",),
    "grad_norm_ratio": ("zaeemzadeh2020/fig3",),
    "backward_moments": ("xie2017/fig3",),
    "backward_profile": ("xie2017/fig4",),
    "param_efficiency": ("zaeemzadeh2020/fig5",),
    "conv1_filters": ("xie2017/fig6",),
    "weight_correlation": ("xie2017/fig2",),
    "singular_values": ("jia2017/fig1",),
    "sv_histograms": ("jia2017/fig1",),
    "weight_condition": ("oyedotun2020/fig11", "oyedotun2020/fig12"),
    "hidden_condition": ("oyedotun2020/fig13",),
    "activation_dist": ("oyedotun2020/fig5",),
    "weight_dist": ("oyedotun2020/fig5",),
}


@functools.cache
def _protocol_labels(paper: str) -> dict[str, str]:
    """The labels of a paper's protocols in ``normbench/references/<paper>.yaml`` (``fig5`` -> ``Figs. 5-10``)."""
    import yaml

    try:
        text = resources.files("normbench.references").joinpath(f"{paper}.yaml").read_text()
    except (FileNotFoundError, ModuleNotFoundError):
        return {}
    protocols = (yaml.safe_load(text) or {}).get("protocols") or {}
    return {k: str(v["label"]) for k, v in protocols.items() if isinstance(v, dict) and v.get("label")}


def paper_figure_label(key: str) -> str:
    """``zaeemzadeh2020/fig3`` -> ``Zaeemzadeh et al. 2020, Fig. 3`` (the reference file's label if any)."""
    paper, _, fig = key.partition("/")
    m = re.fullmatch(r"([a-z]+)(\d{4})", paper)
    who = f"{m.group(1).capitalize()} et al. {m.group(2)}" if m else paper
    n = re.fullmatch(r"fig(\w+)", fig)
    label = _protocol_labels(paper).get(fig) or (f"Fig. {n.group(1)}" if n else fig)
    return f"{who}, {label}"


def figure_title(runs: list[Run], kind: str, title: str = "") -> str:
    """The title of a ``kind`` figure of ``runs``: the paper figures it reproduces, named by the runs'
    ``reproduces`` lists (e.g. ``Zaeemzadeh et al. 2020, Fig. 3 (proxy: digits)``), with the experiments drawn;
    a ``title`` that is a paper figure's key (``oyedotun2020/fig12``, as the workflow's paper figures pass it)
    names that figure alone; else ``title`` (the experiment key) when no run's list names a figure this kind
    draws."""
    if re.fullmatch(r"[a-z]+\d{4}/fig\w+", title):  # a paper figure named by its key: that figure alone
        keys, labels = [title], {title: "Fig. " + title.partition("/fig")[2]}
    else:
        keys = [
            k
            for k in dict.fromkeys(k for r in runs for k in r.config.get("reproduces") or [])
            if k in PAPER_FIGURES.get(kind, ())
        ]
        labels = {}
    if not keys:
        return title
    by_paper: dict[str, list[str]] = {}
    for key in keys:
        who, _, label = paper_figure_label(key).partition(", ")
        label = labels.get(key, label)
        by_paper.setdefault(who, []).append(label)
    names = "; ".join(f"{who}, {', '.join(labels)}" for who, labels in by_paper.items())
    data = []
    for r in runs:
        ds, paper_ds = r.config.get("dataset"), r.config.get("paper_dataset")
        if ds:
            data.append(f"proxy: {ds}" if paper_ds and paper_ds != ds else str(ds))
    data = list(dict.fromkeys(data))
    experiments = list(dict.fromkeys(str(r.config.get("experiment", "")) for r in runs))
    text = names + (f" ({', '.join(data)})" if data else "")
    return text + f"; experiment{'s' if len(experiments) > 1 else ''} {', '.join(experiments)}"


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
    """Long table of epoch records: one row per (run, epoch, split) with depth, model, method, loss and error,
    and ``unhealthy`` (the test split of an epoch whose evaluation the trainer flagged: an ``eval_health``
    record, a non-finite or absurd test loss)."""
    rows = []
    for run in runs:
        cfg = run.config
        depth, own = model_depth(cfg, depths), model_depth(cfg)
        family = cfg["model"].replace(str(own), "", 1).strip("_") if own is not None else cfg["model"]
        bad = {r["epoch"] for r in run.records if r.get("kind") == "eval_health"}
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
                        "unhealthy": split == "test" and r["epoch"] in bad,
                    }
                )
    return pd.DataFrame(rows)


def _mark_unhealthy(ax, g: pd.DataFrame, color) -> int:
    """An ``x`` on the top edge of ``ax`` at each epoch where a run of ``g`` had an unhealthy evaluation (its
    point is not a number to read: the line skips or distorts it); returns how many evaluations."""
    if "unhealthy" not in g:
        return 0
    bad = g[g["unhealthy"].astype(bool)]
    for epoch in sorted(set(bad["epoch"])):
        ax.annotate(
            "x", xy=(epoch, 1.0), xycoords=("data", "axes fraction"), ha="center", va="top", color=color
        )
    return len(bad)


def _variant(name: str, method: str) -> str:
    return name + (f" + {method}" if method else "")


def _curves_layout(df: pd.DataFrame, opts: Mapping[str, Any]) -> tuple[pd.DataFrame, bool, list]:
    """The frame of :func:`curves_frame` restricted to the drawn splits, with its ``variant`` (hue) and
    ``panel`` (column key) columns; whether the columns are depths; the column keys (-1: depth unknown)."""
    if not df.empty:
        df = df[df["split"].isin(opts["splits"])]
    depths = sorted(d for d in df["depth"].dropna().unique()) if not df.empty else []
    by_depth = bool(depths) and (opts["panels"] == "depth" or (opts["panels"] == "auto" and len(depths) > 1))
    if not df.empty:
        # the hue: the model, its depth digits dropped when the depth is the panel, and the method
        df["variant"] = [_variant(m, k) for m, k in zip(df["family" if by_depth else "model"], df["method"])]
        # a run without a registry depth gets a panel of its own rather than none
        df["panel"] = df["depth"].fillna(-1) if by_depth else 0
    panels = [*depths, *([-1] if by_depth and (df["panel"] == -1).any() else [])] if by_depth else [0]
    return df, by_depth, panels


def _curves_cell(ax, sub: pd.DataFrame, metric: str, opts: Mapping[str, Any], palette: Mapping) -> int:
    """One panel of :func:`plot_curves`: a mean line and band over seeds per (variant, split) of ``sub`` for
    ``metric``, unhealthy evaluations marked (:func:`_mark_unhealthy`); returns how many were marked."""
    log = metric == "loss" and opts["loss_scale"] == "log"
    drawn, unhealthy = False, 0
    if not sub.empty:
        for (var, split), g in sub.groupby(["variant", "split"], sort=False):
            unhealthy += _mark_unhealthy(ax, g, palette[var])
            line = mean_band(
                ax,
                g,
                "epoch",
                metric,
                spread=opts["spread"],
                bounds=METRIC_BOUNDS[metric],
                log=log,
                color=palette[var],
                ls=SPLIT_LINE[split],
                lw=1.4,
                label=f"{var} ({split})",
            )
            drawn = drawn or line is not None
    if not drawn:
        no_data(ax, "no completed epochs")
    elif log:
        ax.set_yscale("log")
    return unhealthy


def _curves_caption(runs: list[Run], df: pd.DataFrame, spread_text: str, unhealthy: int) -> str:
    """The caption of :func:`plot_curves`: seeds and spread of the bands, proxy networks, unhealthy marks."""
    seeds = int(df.groupby("variant")["seed"].nunique().max()) if not df.empty else 0
    proxy = any(r.config.get("arch", r.config["model"]) != r.config["model"] for r in runs)
    caption = f"line: mean over {seeds} seeds, band: {spread_text} over seeds"
    if proxy:
        caption += "; PROXY stand-in networks"
    if unhealthy:
        caption += (
            f"; x on the top edge: {unhealthy} unhealthy test evaluation{'s' if unhealthy != 1 else ''} "
            "(test loss not finite or above 100 x chance)"
        )
    return caption


def plot_curves(
    runs: list[Run], out_stem: str | Path, title: str = "", layout: Mapping[str, Any] | None = None
) -> list[Path]:
    """Error and loss per epoch, one column per depth (see the module docstring); writes PNG, PDF and JSON.
    The bands are clipped to the metric's range: errors to [0, 100], losses to positive values."""
    opts = layout_options(layout)
    df, by_depth, panels = _curves_layout(curves_frame(runs, opts["depths"]), opts)
    spread_text = SPREADS[opts["spread"]][1]
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
    unhealthy = 0
    for col, panel in enumerate(panels):
        sub = df[df["panel"] == panel] if not df.empty else df
        for row, (metric, label) in enumerate(METRIC_AXES):
            ax = axes[row][col]
            n_bad = _curves_cell(ax, sub, metric, opts, palette)
            unhealthy += n_bad if row == 0 else 0
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
            ax.set_xlabel("epoch" if row == len(METRIC_AXES) - 1 else "")
            ax.set_ylabel(label if col == 0 else "")
            if row == 0 and by_depth:
                ax.set_title(f"depth {int(panel)}" if panel != -1 else "depth unknown")
    handles = [plt.Line2D([], [], color=palette[v], lw=2) for v in variants]
    handles += [plt.Line2D([], [], color="0.3", ls=SPLIT_LINE[s]) for s in opts["splits"]]
    labels = [*variants, *opts["splits"]]
    if handles:
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, frameon=False)
    caption = _curves_caption(runs, df, spread_text, unhealthy)
    title = figure_title(runs, "curves", title)
    return save_figure(fig, out_stem, f"{title}\n{caption}" if title else caption)


# ----------------------------------------------------------------------------- Zaeemzadeh et al., Fig. 2


def fig2_grid_frame(runs: list[Run]) -> pd.DataFrame:
    """One row per (method, c, d) of the Fig. 2 study's runs: the ratio of the 3x3 Conv-ReLU layer at the last
    probe record (the paper's 10th epoch), mean, std, min and max over runs, and the number of runs.

    Each run of the study (:mod:`normbench.studies.fig2`) holds one ``grad_norm_ratio`` record per grid cell, with
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
    title = figure_title(runs, "fig2_grid", title)
    return save_figure(fig, out_stem, f"{title}\n{caption}" if title else caption)


# ----------------------------------------------------------------------------- Zaeemzadeh et al., Fig. 5


def model_params(cfg: Mapping[str, Any]) -> float:
    """Parameters (millions) of a run's network as built for its data set (classes and channels), counted on
    the meta device (no memory, no init); NaN for a model the registry does not know."""
    classes, channels = DATASET_SHAPES.get(cfg.get("dataset") or "", DATASET_SHAPES["cifar10"])
    return _meta_params(cfg["model"], classes, channels)


@functools.cache
def _meta_params(name: str, classes: int, channels: int) -> float:
    from normbench.models import MODELS, count_params
    from normbench.models.summary import build_meta

    info = MODELS.get(name)
    return float("nan") if info is None else count_params(build_meta(info, classes, channels)) / 1e6


def param_efficiency_frame(runs: list[Run]) -> pd.DataFrame:
    """One row per run: family (the model without its depth digits, and the method), depth, parameters
    (millions) and final test error (%; NaN for a diverged run)."""
    rows = []
    for run in runs:
        cfg = run.config
        own = model_depth(cfg)
        family = cfg["model"].replace(str(own), "", 1).strip("_") if own is not None else cfg["model"]
        rows.append(
            {
                "family": _variant(family, method_label(cfg)),
                "model": cfg["model"],
                "depth": own,
                "seed": cfg["seed"],
                "params": model_params(cfg),
                "error": as_float(summarize(run.records)["final_test_error"]),
            }
        )
    return pd.DataFrame(rows, columns=["family", "model", "depth", "seed", "params", "error"])


def plot_param_efficiency(
    runs: list[Run], out_stem: str | Path, title: str = "", layout: Mapping[str, Any] | None = None
) -> list[Path]:
    """Zaeemzadeh Fig. 5, parameter efficiency: final test error (%) against the number of parameters
    (millions, log axis), one line per family (ResNet, ProcResNet, their EraseReLU versions) through its depths,
    each point the mean over seeds with a ± 1 std error bar and annotated with its depth (e.g. ProcResNet-274
    beside ResNet-1001)."""
    df = param_efficiency_frame(runs)
    df = df[np.isfinite(df["error"].astype(float)) & np.isfinite(df["params"].astype(float))]
    sns.set_theme(style="whitegrid", context="paper")
    fig, ax = plt.subplots(figsize=(6.2, 4.2))
    families = list(dict.fromkeys(df["family"]))
    palette = dict(zip(families, sns.color_palette("colorblind", max(1, len(families)))))
    for fam in families:
        g = df[df["family"] == fam]
        stats = g.groupby(["params", "depth"], as_index=False, dropna=False)["error"].agg(["mean", "std"])
        stats = stats.sort_values("params")
        ax.plot(stats["params"], stats["mean"], color=palette[fam], marker="o", ms=4, lw=1.4, label=fam)
        ax.errorbar(
            stats["params"],
            stats["mean"],
            yerr=stats["std"].fillna(0.0),
            fmt="none",
            ecolor=palette[fam],
            capsize=3,
        )
        for _, row in stats.iterrows():
            depth = row["depth"]
            ax.annotate(
                f"{int(depth)}" if depth == depth and depth is not None else "?",
                (row["params"], row["mean"]),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=7,
                color=palette[fam],
            )
    if families:
        ax.set_xscale("log")
        ax.legend(fontsize=7)
    else:
        no_data(ax, "no finished runs")
    ax.set_xlabel("parameters (millions)")
    ax.set_ylabel("test error (%)")
    seeds = int(df.groupby("model")["seed"].nunique().max()) if not df.empty else 0
    caption = f"final test error against parameters, mean over {seeds} seeds (bar: ± 1 std); labels: depth"
    title = figure_title(runs, "param_efficiency", title)
    return save_figure(fig, out_stem, f"{title}\n{caption}" if title else caption)


# ----------------------------------------------------------------------------- Xie et al., Fig. 6


def first_conv_weight(run: Run):
    """The first convolution kernel (``c_out x c_in x kh x kw``, float64 numpy) of a run's final weights
    (``checkpoint.pt`` beside its log: the model's state dict in definition order, conv1 first); ``None``
    without a checkpoint or a 4-D weight."""
    import torch

    path = Path(run.path) / "checkpoint.pt"
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    weights = state.get("model", state) if isinstance(state, dict) else {}
    for key, tensor in weights.items():
        if key.endswith("weight") and getattr(tensor, "dim", lambda: 0)() == 4:
            return tensor.detach().double().numpy()
    return None


def filter_mosaic(weight: np.ndarray) -> np.ndarray:
    """The filters of a conv kernel tiled in a square grid, each scaled to [0, 1] on its own (as filter
    pictures are drawn), white 1-pixel gaps: RGB for 3 input channels, else the mean over input channels."""
    n, c, kh, kw = weight.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    depth = 3 if c == 3 else 1
    out = np.ones((rows * (kh + 1) + 1, cols * (kw + 1) + 1, depth))
    for i in range(n):
        f = weight[i] if depth == 3 else weight[i].mean(axis=0, keepdims=True)
        lo, hi = float(np.min(f)), float(np.max(f))
        f = (f - lo) / (hi - lo) if hi > lo else np.full_like(f, 0.5)
        r, q = divmod(i, cols)
        out[1 + r * (kh + 1) : 1 + r * (kh + 1) + kh, 1 + q * (kw + 1) : 1 + q * (kw + 1) + kw] = f.transpose(
            1, 2, 0
        )
    return out if depth == 3 else out[..., 0]


def _method_order(method: str) -> tuple[bool, str]:
    return (method != "none", method)


def plot_conv1_filters(
    runs: list[Run], out_stem: str | Path, title: str = "", layout: Mapping[str, Any] | None = None
) -> list[Path]:
    """Xie Fig. 6: the converged weights of the first convolution, one panel per method (left: L2, the
    method ``none``; right: orthonormality), one row per model (the paper draws ResNet-34), from the first seed's
    ``checkpoint.pt`` (the run folder's final weights: this figure alone needs more than the metrics log)."""
    if (layout or {}).get("depth") is not None:  # the paper draws one network (Xie: ResNet-34)
        runs = [r for r in runs if model_depth(r.config) == int(layout["depth"])]
    cells: dict[tuple[str, str], np.ndarray] = {}
    for run in sorted(runs, key=lambda r: r.config["seed"]):
        key = (run.config["model"], run.config["method"])
        if key in cells:
            continue
        weight = first_conv_weight(run)
        if weight is not None:
            cells[key] = weight
    models = list(dict.fromkeys(r.config["model"] for r in runs)) or [""]
    methods = sorted(dict.fromkeys(r.config["method"] for r in runs), key=_method_order) or ["none"]
    fig, axes = plt.subplots(
        len(models), len(methods), figsize=(3.6 * len(methods), 3.8 * len(models) + 0.6), squeeze=False
    )
    for i, model in enumerate(models):
        for j, method in enumerate(methods):
            ax = axes[i][j]
            weight = cells.get((model, method))
            label = "L2 regularization" if method == "none" else method
            head = f"{model}: {label}" if len(models) > 1 else label
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if weight is None:
                ax.set_title(head, fontsize=9)
                no_data(ax, "no checkpoint")
                continue
            ax.set_title(
                f"{head}\n{weight.shape[0]} filters, {weight.shape[2]}x{weight.shape[3]}", fontsize=9
            )
            mosaic = filter_mosaic(weight)
            ax.imshow(
                mosaic,
                cmap=None if mosaic.ndim == 3 else "gray",
                vmin=0.0,
                vmax=1.0,
                interpolation="nearest",
            )
    caption = "converged weights of the first convolution layer (each filter scaled to [0, 1]; first seed)"
    title = figure_title(runs, "conv1_filters", title)
    return save_figure(fig, out_stem, f"{title}\n{caption}" if title else caption)


# name -> builder(runs, out_stem, title, layout): the figure kinds of `normbench figures --figure NAME`
FIGURES: dict[str, Callable[..., list[Path]]] = {
    "curves": plot_curves,
    "fig2_grid": plot_fig2_grid,
    "param_efficiency": plot_param_efficiency,
    "conv1_filters": plot_conv1_filters,
}
