"""Figures of the probes recorded in run logs (``{"kind": "probe"}`` records), one builder per probe name.

Each builder takes the runs of one experiment and draws the paper's layout from their logs alone, mean over
seeds (a ± 1 std band clipped to the quantity's range where a line is drawn: :func:`normbench.outputs.figures.mean_band`)
and writes PNG, PDF and the JSON of what it drew (:func:`normbench.outputs.figures.save_figure`):

- ``grad_norm_ratio``: Zaeemzadeh Fig. 3, ||dE/dx_{l+1}|| / ||dE/dx_l|| per block over epochs (log axis),
  transition blocks dark, the others light; one row per depth and one column per architecture (+ method) when
  the runs span several depths (the paper's 3x3 grid of Plain/ResNet/ProcResNet x 20/83/164), else one panel
  per variant;
- ``backward_moments``: Xie Fig. 3, q^1/q^L (second moment of the backward error at the first conv over the
  last) against the training iteration, two panels: all iterations and, enlarged, those before the first
  learning-rate drop; ``backward_profile``: Xie Fig. 4, q^l/q^L per layer at named iterations (200, 2000,
  20000, 30000), one panel each. The iteration of a record is its own ``iteration`` where the trainer wrote
  one, else the steps of the epochs up to it (:func:`normbench.runs.folder.probe_iterations`); with per-epoch records the title says
  EPOCH RESOLUTION (the paper samples every 50 iterations);
- ``weight_correlation``: Xie Fig. 2, mean signed correlation among filters (Eq. 8) over epochs;
- ``sv_histograms``: Jia Fig. 1, normalized singular-value histograms of the lower, middle and higher layers
  (three panels, SGD red and SVB blue; a row per depth); ``singular_values``: all layers' values pooled;
- ``weight_condition``/``hidden_condition``: Oyedotun Figs. 11-13, condition number per layer at the last
  probe, log scale, infinite values drawn as crosses on the top edge; one panel per data set side by side in
  the paper's order (Fig. 11: MNIST | CIFAR-10, Fig. 12: CIFAR-100 | ImageNet, Fig. 13: CIFAR-10 | CIFAR-100);
- ``activation_dist``/``weight_dist``: median and 5-95% band per layer at the last probe, every model of the
  experiment in one panel; ``unit_distribution``: Oyedotun Figs. 5-10 (MNIST) and A1-A6 (CIFAR-10) as
  printed, one model's activations or weights, a histogram panel per recorded layer (:data:`OYEDOTUN_UNIT_FIGURES`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from normbench.outputs.constraint_figures import plot_procrustes_state  # noqa: E402
from normbench.outputs.figures import (  # noqa: E402
    figure_title,
    mean_band,
    method_label,
    model_depth,
    no_data,
    save_figure,
)
from normbench.outputs.layouts import OYEDOTUN_UNIT_FIGURES  # noqa: E402, F401 (re-exported)
from normbench.runs.folder import Run, first_lr_drop, probe_iterations  # noqa: E402
from normbench.runs.records import as_float  # noqa: E402

GRAD_RATIO_LABEL = r"$\|\partial E/\partial x_{l+1}\| \,/\, \|\partial E/\partial x_l\|$"


def variant(run: Run, strip_depth: bool = False) -> str:
    """The run's model and method (with the method's options, e.g. ``convnet20+svb(eps=0.05)``); with
    ``strip_depth`` the model's registry depth is left out of its name (``plain`` for ``plain83``)."""
    method = method_label(run.config)
    depth = model_depth(run.config) if strip_depth else None
    model = (
        run.config["model"].replace(str(depth), "", 1).strip("_")
        if depth is not None
        else run.config["model"]
    )
    return model + (f"+{method}" if method else "")


def probe_records(runs: list[Run], name: str):
    """Yield (run, epoch, probe result) for every epoch-schedule probe record of ``name``."""
    for run in runs:
        for rec in run.probes(name):
            yield run, rec["epoch"], rec["probes"][name]


def last_probe(runs: list[Run], name: str):
    """(run, result) of the last probe record of ``name`` in every run."""
    last: dict[int, tuple] = {}
    for run, _epoch, result in probe_records(runs, name):
        last[id(run)] = (run, result)
    return list(last.values())


def _grad_ratio_frame(runs: list[Run], depths: dict | None) -> pd.DataFrame:
    """One row per (run, epoch, block) of the ``grad_norm_ratio`` records: variant, family (depth left out),
    depth (``depths`` overriding the registry's), seed, epoch, block index, transition or not, and the ratio."""
    rows = [
        {
            "variant": variant(r),
            "family": variant(r, strip_depth=True),
            "depth": model_depth(r.config, depths),
            "seed": r.config["seed"],
            "epoch": e,
            "block": b["index"],
            "transition": "transition" if b["transition"] else "non-transition",
            "ratio": as_float(b["ratio"]),
        }
        for r, e, res in probe_records(runs, "grad_norm_ratio")
        for b in res
    ]
    return pd.DataFrame(rows)


def _grad_ratio_cells(df: pd.DataFrame) -> tuple[dict, list[str], list[str]]:
    """Fig. 3's layout: one row per depth, one column per architecture, when the runs span several depths;
    else one row and a column per variant. Returns the cells ((row, column) -> rows of ``df``; ``df`` gets its
    ``row`` and ``col`` columns), the row keys and the column keys. The cells are keyed by plain labels (a
    depth of None would become NaN in a groupby key, and NaN never equals itself: every panel of one depth
    was blank)."""
    by_depth = not df.empty and df["depth"].nunique() > 1
    if df.empty:
        return {}, [""], [""]
    if by_depth:
        df["row"] = [f"depth {int(d)}" if d == d and d is not None else "depth unknown" for d in df["depth"]]
        order = sorted(df["depth"].dropna().unique())
        row_keys = [f"depth {int(d)}" for d in order] + (
            ["depth unknown"] if df["depth"].isna().any() else []
        )
        df["col"] = df["family"]
    else:
        df["row"], row_keys = "", [""]
        df["col"] = df["variant"]
    col_keys = list(dict.fromkeys(df["col"]))
    cells = {key: g for key, g in df.groupby(["row", "col"], sort=False)}
    return cells, row_keys, col_keys


def _draw_grad_ratio_cell(ax, sub: pd.DataFrame | None) -> None:
    """One panel of Fig. 3: the ratio per block over epochs, mean over seeds, transition blocks dark and the
    others light, on a log axis with the norm-preserving 1 dotted; a panel without ratios says so."""
    if sub is not None:  # a log axis: non-finite and non-positive ratios are not drawn
        sub = sub[sub["ratio"].map(math.isfinite) & (sub["ratio"] > 0)]
    if sub is None or sub.empty:
        no_data(ax)
        return
    mean = sub.groupby(["block", "transition", "epoch"], as_index=False)["ratio"].mean()
    for (block, kind), g in mean.groupby(["block", "transition"]):
        ax.plot(
            g["epoch"],
            g["ratio"],
            color="#1f3d7a" if kind == "transition" else "#9fb6e0",
            lw=1.6 if kind == "transition" else 0.8,
            zorder=3 if kind == "transition" else 2,
            label=f"block {block}",
        )
    ax.set_yscale("log")
    ax.axhline(1.0, color="k", lw=0.6, ls=":")


def plot_grad_norm_ratio(
    runs: list[Run], out_stem: Path, title: str, layout: dict | None = None
) -> list[Path]:
    """Zaeemzadeh Fig. 3. ``layout["depths"]`` (model -> depth) draws a model under another depth's row, e.g.
    ProcResNet-22 (20 layers plus its 2 projected convs) beside Plain-20 and ResNet-20."""
    df = _grad_ratio_frame(runs, (layout or {}).get("depths"))
    cells, row_keys, col_keys = _grad_ratio_cells(df)
    fig, axes = plt.subplots(
        len(row_keys),
        len(col_keys),
        figsize=(4.2 * len(col_keys) + 0.8, 3.2 * len(row_keys) + 0.6),
        squeeze=False,
        sharey=True,
        sharex=True,
    )
    for i, rv in enumerate(row_keys):
        for j, cv in enumerate(col_keys):
            ax = axes[i][j]
            _draw_grad_ratio_cell(ax, cells.get((rv, cv)))
            ax.set_title(f"{cv}, {rv}" if rv else cv)
            ax.set_xlabel("epoch" if i == len(row_keys) - 1 else "")
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    for i in range(len(row_keys)):
        axes[i][0].set_ylabel(GRAD_RATIO_LABEL)
    handles = [plt.Line2D([], [], color="#1f3d7a", lw=1.6), plt.Line2D([], [], color="#9fb6e0", lw=0.8)]
    axes[0][-1].legend(handles, ["transition blocks", "non-transition blocks"], fontsize=7, loc="best")
    seeds = int(df.groupby("variant")["seed"].nunique().max()) if not df.empty else 0
    caption = f"gradient norm ratio per block, mean over {seeds} seeds"
    return save_figure(fig, out_stem, f"{figure_title(runs, 'grad_norm_ratio', title)}\n{caption}")


def _epoch_series(
    runs: list[Run],
    name: str,
    value: Callable,
    ylabel: str,
    out_stem: Path,
    title: str,
    caption: str,
    log: bool = False,
    bounds: tuple[float | None, float | None] = (None, None),
) -> list[Path]:
    df = pd.DataFrame(
        [
            {"variant": variant(r), "seed": r.config["seed"], "epoch": e, "value": value(res)}
            for r, e, res in probe_records(runs, name)
        ]
    )
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    drawn = False
    if not df.empty:
        for var, g in df.groupby("variant", sort=False):
            line = mean_band(
                ax, g, "epoch", "value", bounds=bounds, log=log, marker="o", markersize=3, label=var
            )
            drawn = drawn or line is not None
    if not drawn:
        no_data(ax)
    else:
        ax.legend(fontsize=7)
        if log:
            ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    seeds = int(df.groupby("variant")["seed"].nunique().max()) if not df.empty else 0
    caption = f"{caption}, mean over {seeds} seeds (band: ± 1 std)"
    return save_figure(fig, out_stem, f"{figure_title(runs, name, title)}\n{caption}")


def plot_weight_correlation(runs, out_stem, title, layout=None):
    return _epoch_series(
        runs,
        "weight_correlation",
        lambda res: as_float(res["mean"]),
        r"mean filter correlation $\bar{s}$ (Xie Eq. 8)",
        out_stem,
        title,
        "weight correlation among filters",
        bounds=(-1.0, 1.0),
    )


def plot_relu_nonzero(runs, out_stem, title, layout=None):
    """Xie footnote 3: the share of ReLU outputs that are non-zero over the epochs."""
    return _epoch_series(
        runs,
        "relu_nonzero",
        lambda res: as_float(res["percent"]),
        "non-zero ReLU outputs (%)",
        out_stem,
        title,
        "share of non-zero outputs over every ReLU (the paper: about 50 % after BN)",
        bounds=(0.0, 100.0),
    )


def plot_bn_gamma(runs, out_stem, title, layout=None):
    """Jia Sec. 5, the gammas "empirically observed to keep positive during the process of network training":
    the smallest batch-norm scale gamma over the layers, over the epochs; at or below 0 one changed sign."""
    return _epoch_series(
        runs,
        "bn_gamma",
        lambda res: min((as_float(layer["min"]) for layer in res), default=float("nan")),
        r"smallest BN scale $\gamma$ over the layers",
        out_stem,
        title,
        "the paper: gammas 'empirically observed to keep positive' (at or below 0: a sign change)",
    )


def _spans_decades(values: pd.Series, decades: float = 2.0) -> bool:
    positive = values[values > 0]
    return len(positive) > 0 and bool((values > 0).all()) and positive.max() / positive.min() > 10**decades


def plot_singular_values(runs, out_stem, title, layout=None, name="singular_values"):
    rows = [
        {"variant": variant(r), "singular value": as_float(sv)}
        for r, res in last_probe(runs, name)
        for layer in res
        for sv in layer["singular_values"]
    ]
    df = pd.DataFrame(rows)
    if not df.empty:
        df = df[df["singular value"].map(math.isfinite)]
    wide = not df.empty and _spans_decades(df["singular value"])
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    if df.empty:
        no_data(ax)
    else:
        sns.histplot(
            data=df,
            x="singular value",
            hue="variant",
            stat="probability",
            common_norm=False,
            element="step",
            bins=50,
            # spectra spanning more than two decades (an exploded layer): log-spaced bins, else one bar
            log_scale=10 if wide else False,
            ax=ax,
        )
    ax.set_xlabel(r"singular value $\sigma$ of a layer's weight matrix" + (" (log scale)" if wide else ""))
    ax.set_ylabel("fraction of singular values")
    caption = "weight singular values of all layers at the last probe (all seeds)"
    return save_figure(fig, out_stem, f"{figure_title(runs, name, title)}\n{caption}")


# The data sets in the order the papers draw them (Oyedotun Fig. 11: MNIST left, CIFAR-10 right; Fig. 12:
# CIFAR-100 left, ImageNet right; Fig. 13: CIFAR-10 left, CIFAR-100 right) and their printed names.
DATASET_ORDER = ("mnist", "cifar10", "cifar100", "imagenet")
DATASET_NAMES = {"mnist": "MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet": "ImageNet"}


def dataset_key(run: Run) -> str:
    """The data set a run stands for (its ``paper_dataset``, else its ``dataset``; ``""`` when unknown)."""
    return str(run.config.get("paper_dataset") or run.config.get("dataset") or "")


def dataset_title(runs: list[Run], key: str) -> str:
    """``CIFAR-10`` or, for runs on a stand-in, ``CIFAR-10 (proxy: digits)``."""
    name = DATASET_NAMES.get(key, key)
    proxies = sorted({str(r.config.get("dataset")) for r in runs if dataset_key(r) == key} - {key, "None"})
    return name + (f" (proxy: {', '.join(proxies)})" if proxies else "")


def dataset_panels(runs: list[Run]) -> list[str]:
    """The data sets of ``runs`` in the papers' order (others after, sorted)."""
    keys = {dataset_key(r) for r in runs}
    return [k for k in DATASET_ORDER if k in keys] + sorted(keys - set(DATASET_ORDER))


def _per_layer(runs, name, key, ylabel, out_stem, title, caption, log=True, layout=None) -> list[Path]:
    """Oyedotun Figs. 11-13: a condition number per layer (forward order) at the last probe, one line per
    variant (mean over seeds, ± 1 std band clipped at 1), infinite values as crosses on the panel's top edge;
    one panel per data set, side by side in the paper's order (Fig. 11: MNIST | CIFAR-10; Fig. 12:
    CIFAR-100 | ImageNet; Fig. 13: CIFAR-10 | CIFAR-100), so a paper figure drawn from the runs of both its
    experiments has the printed layout. ``layout["datasets"]`` fixes the panels (a paper figure's two data
    sets: one without runs is drawn as "no records" rather than left out)."""
    rows = [
        {
            "dataset": dataset_key(r),
            "variant": variant(r),
            "seed": r.config["seed"],
            "layer": i,
            "value": as_float(layer[key]),
        }
        for r, res in last_probe(runs, name)
        for i, layer in enumerate(res)
    ]
    df = pd.DataFrame(rows, columns=["dataset", "variant", "seed", "layer", "value"])
    panels = list((layout or {}).get("datasets") or dataset_panels(runs) or [""])
    fig, axes = plt.subplots(
        1, len(panels), figsize=(6.0 * len(panels) + 0.5, 3.8), squeeze=False, sharey=True
    )
    for ax, ds in zip(axes[0], panels):
        sub = df[df["dataset"] == ds]
        drawn = False
        finite = sub[sub["value"].map(math.isfinite).astype(bool)]
        for var, g in finite.groupby("variant", sort=False) if not finite.empty else []:
            # a condition number is at least 1: the ± 1 std band is clipped there
            line = mean_band(
                ax, g, "layer", "value", bounds=(1.0, None), log=log, marker="o", markersize=3, label=var
            )
            drawn = drawn or line is not None
        inf = sub[sub["value"] == float("inf")]
        if not inf.empty:
            top = finite["value"].max() * 3 if not finite.empty else 10.0
            ax.scatter(
                inf["layer"], [top] * len(inf), marker="x", color="crimson", label="infinite", zorder=5
            )
            drawn = True
        if drawn:
            if log:
                ax.set_yscale("log")
            ax.legend(fontsize=7)
        else:
            no_data(ax)
        ax.set_title(dataset_title(runs, ds) if ds else "")
        ax.set_xlabel("layer (forward order)")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes[0][0].set_ylabel(ylabel)
    seeds = int(df.groupby("variant")["seed"].nunique().max()) if not df.empty else 0
    caption = f"{caption} at the last probe, mean over {seeds} seeds (band: ± 1 std)"
    return save_figure(fig, out_stem, f"{figure_title(runs, name, title)}\n{caption}")


def plot_distribution(runs, out_stem, title, name):
    rows = []
    for r, res in last_probe(runs, name):
        for layer in res:
            q = dict(zip(layer["quantiles"]["q"], layer["quantiles"]["values"]))
            rows.append(
                {
                    "variant": variant(r),
                    "layer": layer["layer_index"],
                    "median": as_float(q.get(0.5)),
                    "q05": as_float(q.get(0.05)),
                    "q95": as_float(q.get(0.95)),
                }
            )
    df = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    drawn = False
    for var, g in df.groupby("variant", sort=False) if not df.empty else []:
        g = g.groupby("layer", as_index=False).mean(numeric_only=True)
        g = g[g["median"].map(math.isfinite)]
        if g.empty:
            continue
        line = ax.plot(g["layer"], g["median"], marker="o", markersize=3, label=var)[0]
        ax.fill_between(g["layer"], g["q05"], g["q95"], color=line.get_color(), alpha=0.2, lw=0)
        drawn = True
    if drawn:
        ax.legend(fontsize=7)
    else:
        no_data(ax)
    ax.set_xlabel("layer index (forward order)")
    kind = "activations" if name == "activation_dist" else "weights"
    ax.set_ylabel(f"{kind[:-1]} value (median, 5-95% band)")
    caption = f"distribution of {kind} per layer at the last probe (mean over seeds)"
    return save_figure(fig, out_stem, f"{figure_title(runs, name, title)}\n{caption}")


def plot_unit_distribution(runs, out_stem, title, layout=None):
    """Oyedotun Figs. 5-10 and A1-A6: the distribution of one model's units' activations (or weights) at
    each recorded layer (the probe's early and later layers), one panel per layer, at the last probe record:
    a histogram per seed (fraction of the values per bin), the panel title giving the layer and the range of
    the values (the paper quotes ranges: "the range of units' activations is 1.7 million").
    ``layout``: ``model`` (the runs of that model only) and ``probe`` (``activation_dist``, the default, or
    ``weight_dist``)."""
    layout = layout or {}
    name = layout.get("probe", "activation_dist")
    model = layout.get("model")
    chosen = [r for r in runs if model is None or r.config["model"] == model]
    by_layer: dict[int, list[tuple[int, dict]]] = {}
    names: dict[int, str] = {}
    for r, res in last_probe(chosen, name):
        for layer in res:
            idx = layer.get("layer_index")
            by_layer.setdefault(idx, []).append((r.config["seed"], layer))
            names[idx] = layer.get("name", "")
    keys = sorted(by_layer, key=lambda i: (i is None, i))
    fig, axes = plt.subplots(1, max(len(keys), 1), figsize=(4.2 * max(len(keys), 1), 3.4), squeeze=False)
    kind = "activations" if name == "activation_dist" else "weights"
    for ax, idx in zip(axes[0], keys):
        ranges = []
        for seed, layer in sorted(by_layer[idx], key=lambda t: t[0]):
            hist = layer.get("histogram") or {}
            counts = [as_float(c) for c in hist.get("counts", [])]
            edges = [as_float(e) for e in hist.get("edges", [])]
            total = sum(counts)
            if not counts or total <= 0 or len(edges) != len(counts) + 1:
                continue
            frac = [
                c / total for c in counts
            ]  # a closed stair outline: up at the first edge, down at the last
            ax.plot([edges[0], *edges], [0.0, *frac, 0.0], drawstyle="steps-post", label=f"seed {seed}")
            ranges.append(as_float(layer.get("range")))
        if ranges:
            finite = [v for v in ranges if math.isfinite(v)]
            rng = f"range {max(finite):.3g}" if finite else "range not finite"
            ax.set_title(f"layer {idx + 1 if idx is not None else '?'} ({names[idx]}): {rng}", fontsize=8)
            ax.legend(fontsize=6)
        else:
            no_data(ax)
            ax.set_title(f"layer {idx + 1 if idx is not None else '?'}", fontsize=8)
        ax.set_xlabel(f"{kind[:-1]} value")
    for ax in axes[0]:
        ax.set_ylim(bottom=0.0)
    if not keys:
        no_data(axes[0][0])
    axes[0][0].set_ylabel("fraction of values")
    who = f"{model}: " if model else ""
    caption = (
        f"{who}units' {kind} at the recorded layers (the probe's first and last weight layers; the paper shows "
        "the first and the 160th of 164), last probe record, a histogram per seed"
    )
    return save_figure(fig, out_stem, f"{figure_title(chosen, name, title)}\n{caption}")


# ----------------------------------------------------------------------------- Jia et al., Fig. 1

# Jia Fig. 1: "Red stairs are from SGD based training, and blue ones are from our proposed SVB method"
JIA_COLOURS = {"none": "#d62728", "svb": "#1f77b4"}
POSITION_NAMES = ("lower layer", "middle layer", "higher layer")


def _position_name(i: int, k: int) -> str:
    return POSITION_NAMES[i] if k == 3 else f"layer {i + 1} of {k}"


def _sv_frame(runs: list[Run], name: str) -> pd.DataFrame:
    """One row per finite singular value of the last ``name`` probe of every run: depth, variant (depth left
    out), method, the layer's position among the recorded layers, their number, the layer's name and the value."""
    rows = []
    for r, res in last_probe(runs, name):
        for i, layer in enumerate(res):
            for sv in layer["singular_values"]:
                rows.append(
                    {
                        "depth": model_depth(r.config),
                        "variant": variant(r, strip_depth=True),
                        "method": r.config["method"],
                        "position": i,
                        "positions": len(res),
                        "layer": layer["name"],
                        "sv": as_float(sv),
                    }
                )
    df = pd.DataFrame(rows, columns=["depth", "variant", "method", "position", "positions", "layer", "sv"])
    return df[df["sv"].map(math.isfinite).astype(bool)]  # astype: an empty mask must stay a row mask


def _sv_histograms(ax, sub: pd.DataFrame, palette: dict) -> None:
    """A normalized histogram (fractions, a stair line) per variant of ``sub``'s singular values on 40 bins
    shared by the panel's variants: log-spaced (and a log axis) when the values, all positive, span more than
    two decades (:func:`_spans_decades`), else linear with a 5 % margin."""
    lo, hi = float(sub["sv"].min()), float(sub["sv"].max())
    wide = _spans_decades(sub["sv"])
    if wide:
        edges = np.geomspace(lo, hi, 41)
    else:
        pad = 0.05 * (hi - lo) if hi > lo else 0.05 * max(abs(hi), 1.0)
        edges = np.linspace(lo - pad, hi + pad, 41)
    for var, g in sub.groupby("variant", sort=False):
        counts, _ = np.histogram(g["sv"], bins=edges)
        frac = counts / max(counts.sum(), 1)
        ax.step(edges, np.r_[frac, frac[-1]], where="post", color=palette[var], lw=1.4, label=var)
    if wide:
        ax.set_xscale("log")
    ax.legend(fontsize=7)


def plot_sv_layers(runs, out_stem, title, layout=None, name="sv_histograms"):
    """Jia Fig. 1: normalized singular-value histograms of the lower, middle and higher layers (the three
    layers the ``sv_histograms`` probe records, in forward order) at the last probe, one panel each, a stair
    line per variant (SGD red, SVB blue, as printed) on bins shared by the panel's variants, all seeds'
    values pooled; one row per depth when the runs span several depths."""
    df = _sv_frame(runs, name)
    df["row"] = [f"depth {int(d)}" if d == d and d is not None else "" for d in df["depth"]]
    depths = sorted(df["depth"].dropna().unique()) if not df.empty else []
    row_keys = [f"depth {int(d)}" for d in depths] if len(depths) > 1 else [""]
    if len(depths) <= 1:
        df["row"] = ""
    k = int(df["positions"].max()) if not df.empty else 3
    fig, axes = plt.subplots(
        len(row_keys), k, figsize=(3.8 * k + 0.6, 3.2 * len(row_keys) + 0.6), squeeze=False
    )
    variants = list(dict.fromkeys(df["variant"]))
    palette = dict(zip(variants, sns.color_palette("colorblind", max(1, len(variants)))))
    methods = {v: df.loc[df["variant"] == v, "method"].iloc[0] for v in variants}
    if len(set(methods.values())) == len(variants):  # one variant per method: the paper's colours
        palette.update({v: JIA_COLOURS[m] for v, m in methods.items() if m in JIA_COLOURS})
    for i, rk in enumerate(row_keys):
        for j in range(k):
            ax = axes[i][j]
            sub = df[(df["row"] == rk) & (df["position"] == j)]
            if sub.empty:
                no_data(ax)
            else:
                _sv_histograms(ax, sub, palette)
            layers = ", ".join(dict.fromkeys(sub["layer"])) if not sub.empty else ""
            head = _position_name(j, k) + (f" ({layers})" if layers else "")
            ax.set_title(f"{rk}: {head}" if rk else head, fontsize=9)
            ax.set_xlabel(r"singular value $\sigma$" if i == len(row_keys) - 1 else "")
            if j == 0:
                ax.set_ylabel("fraction of singular values")
    caption = "normalized singular-value histograms of three layers at the last probe (all seeds pooled)"
    return save_figure(fig, out_stem, f"{figure_title(runs, name, title)}\n{caption}")


# ----------------------------------------------------------------------------- Xie et al., Figs. 3-4


def _resolution_note(runs: list[Run], name: str) -> str:
    """How finely the probe was sampled: per iteration record, or per epoch (the papers' iterations are then
    the steps of the epochs up to each record)."""
    own = sorted(
        {rec["iteration"] for r in runs for rec in r.probes(name, iterations=True) if "iteration" in rec}
    )
    if own:
        gaps = sorted({b - a for a, b in zip(own, own[1:])})
        return "probes recorded " + (
            f"every {gaps[0]} iterations" if len(gaps) == 1 else "at named iterations"
        )
    every = sorted({rec["epoch"] for r in runs for rec in r.probes(name)})
    gaps = sorted({b - a for a, b in zip(every, every[1:])})
    step = f"every {gaps[0]} epoch{'s' if gaps[0] != 1 else ''}" if len(gaps) == 1 else "per epoch"
    return f"EPOCH RESOLUTION: probes recorded {step} (iteration = training steps up to the record)"


def _backward_frame(runs: list[Run]) -> pd.DataFrame:
    rows = []
    for r in runs:
        for epoch, it, res in probe_iterations(r, "backward_moments"):
            q = [as_float(v) for v in res["q"]]
            rows.append(
                {
                    "variant": variant(r),
                    "depth": model_depth(r.config),
                    "seed": r.config["seed"],
                    "epoch": epoch,
                    "iteration": it,
                    "q": q,
                    "value": q[0] / q[-1] if q and q[-1] > 0 else float("nan"),
                }
            )
    return pd.DataFrame(rows, columns=["variant", "depth", "seed", "epoch", "iteration", "q", "value"])


XIE_SKIP = (
    5  # "we omit the ratios of first five iterations in Fig. 3 since the disproportional order of magnitude"
)


def plot_backward_moments(runs, out_stem, title, layout=None):
    """Xie Fig. 3: q^1/q^L (the second moment of the backward error at the first conv over that at the last)
    against the training iteration, a line per variant (mean over seeds, ± 1 std band), log axis, the first
    five iterations omitted as in the paper. Two panels: top, all iterations; bottom, enlarged from the 5th
    iteration to the first learning-rate drop (the paper's 32000th iteration), read from the epoch records.
    Iterations come from the records (see :func:`normbench.runs.folder.probe_iterations`); where they are unknown the x axis is the
    epoch. The paper samples every 50 iterations; the note in the title says the resolution drawn."""
    df = _backward_frame(runs)
    use_it = not df.empty and df["iteration"].notna().all()
    x = "iteration" if use_it else "epoch"
    if use_it:
        df["iteration"] = df["iteration"].astype(int)
        kept = df[df["iteration"] >= XIE_SKIP]
        df = kept if not kept.empty else df
    drops = [d for d in (first_lr_drop(r) for r in runs) if d is not None]
    end = min(drops) if drops and use_it else None
    fig, axes = plt.subplots(2, 1, figsize=(7.5, 6.4), squeeze=False)
    spans = [
        ("all iterations" if use_it else "all epochs", df),
        (
            f"enlarged: iterations {XIE_SKIP}-{end} (before the first learning-rate drop)"
            if end is not None
            else "enlarged: no learning-rate drop recorded (same range)",
            df[df[x] <= end] if end is not None else df,
        ),
    ]
    for ax, (head, sub) in zip(axes[:, 0], spans):
        drawn = False
        for var, g in sub.groupby("variant", sort=False):
            line = mean_band(
                ax, g, x, "value", bounds=(0.0, None), log=True, marker="o", markersize=2, label=var
            )
            drawn = drawn or line is not None
        _end_ratio_panel(ax, drawn, 7)
        ax.set_title(head, fontsize=9)
        ax.set_xlabel(x)
        ax.set_ylabel(r"$q^1 / q^L$")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    seeds = int(df.groupby("variant")["seed"].nunique().max()) if not df.empty else 0
    caption = (
        "2nd moment of the backward error at the first conv over the last, "
        f"mean over {seeds} seeds (band: ± 1 std); "
        + _resolution_note(runs, "backward_moments")
        + "; the paper samples every 50 iterations"
    )
    return save_figure(fig, out_stem, f"{figure_title(runs, 'backward_moments', title)}\n{caption}")


XIE_FIG4_ITERATIONS = (
    200,
    2000,
    20000,
    30000,
)  # "We only present 200th, 2000th, 20000th and 30000th iteration"


def _nearest_records(
    rows: pd.DataFrame, target: int, targets: tuple, use_it: bool
) -> tuple[pd.DataFrame, str]:
    """Per run (variant and seed), the backward-moments record nearest the named iteration ``target``;
    without iterations, the epoch at the same fraction of the recorded epochs (the best the log allows).
    Returns the records and the panel's title, which says the iterations and epochs picked."""
    head = f"iteration {target}"
    pos = (rows["iteration"] if use_it else rows["epoch"]).astype(float)
    goal = target if use_it else pos.max() * target / max(targets)
    dist = (pos - goal).abs()
    pick = rows.loc[dist.groupby([rows["variant"], rows["seed"]]).idxmin()]
    its = sorted({int(v) for v in pick["iteration"]}) if use_it else []
    eps = sorted({int(v) for v in pick["epoch"]})
    head += " (record: " + (f"it. {'/'.join(map(str, its))}, " if use_it else "")
    head += f"epoch {'/'.join(map(str, eps))})"
    return pick, head


def _draw_profiles(ax, pick: pd.DataFrame) -> bool:
    """A line per variant of q^l/q^L against the layer index l (mean over seeds, band clipped to positive
    values) from the records ``pick``; returns whether a line was drawn."""
    drawn = False
    for var, g in pick.groupby("variant", sort=False):
        profiles = [[v / q[-1] if q[-1] > 0 else float("nan") for v in q] for q in g["q"]]
        long = pd.DataFrame(
            [
                {"seed": s, "layer": n + 1, "value": v}
                for s, prof in zip(g["seed"], profiles)
                for n, v in enumerate(prof)
            ]
        )
        line = mean_band(
            ax,
            long,
            "layer",
            "value",
            bounds=(0.0, None),
            log=True,
            marker="o",
            markersize=2,
            label=var,
        )
        drawn = drawn or line is not None
    return drawn


def _profile_panel(ax, rows: pd.DataFrame, target: int, targets: tuple, use_it: bool) -> str:
    """One panel of Xie Fig. 4: the profiles of the records of ``rows`` nearest the named iteration
    ``target``, on a log axis with 1 dotted (or a note without data); returns the panel's title."""
    head = f"iteration {target}"
    drawn = False
    if not rows.empty:
        pick, head = _nearest_records(rows, target, targets, use_it)
        drawn = _draw_profiles(ax, pick)
    _end_ratio_panel(ax, drawn, 6)
    return head


def _end_ratio_panel(ax, drawn: bool, legend_size: int) -> None:
    """Finish a panel of ratios (Xie Figs. 3-4): log axis, a dotted line at 1 and the legend when lines were
    drawn, else the "no records" note."""
    if drawn:
        ax.set_yscale("log")
        ax.axhline(1.0, color="k", lw=0.6, ls=":")
        ax.legend(fontsize=legend_size)
    else:
        no_data(ax)


def plot_backward_profile(runs, out_stem, title, layout=None):
    """Xie Fig. 4: the per-layer profile q^l/q^L (second moment of the backward error at conv layer l over
    that at the last) against the layer index, one panel per named iteration (``layout["iterations"]``,
    default 200, 2000, 20000, 30000), a line per variant (mean over seeds), log axis; one row per depth when
    the runs span several. Each panel draws the probe record nearest its iteration (its title says which
    iteration and epoch it is): with probes recorded per epoch the named iterations are approximated by the
    epoch ends nearest them, and the title's note says so."""
    targets = tuple((layout or {}).get("iterations") or XIE_FIG4_ITERATIONS)
    df = _backward_frame(runs)
    use_it = not df.empty and df["iteration"].notna().all()
    depths = sorted(df["depth"].dropna().unique()) if not df.empty else []
    by_depth = len(depths) > 1
    row_keys = depths if by_depth else [None]
    fig, axes = plt.subplots(
        len(row_keys),
        len(targets),
        figsize=(3.4 * len(targets) + 0.6, 3.2 * len(row_keys) + 0.8),
        squeeze=False,
        sharey=True,
    )
    for i, depth in enumerate(row_keys):
        rows = df[df["depth"] == depth] if by_depth else df
        for j, target in enumerate(targets):
            ax = axes[i][j]
            head = _profile_panel(ax, rows, target, targets, use_it)
            ax.set_title((f"depth {int(depth)}: " if by_depth else "") + head, fontsize=8)
            ax.set_xlabel("layer index $l$" if i == len(row_keys) - 1 else "")
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        axes[i][0].set_ylabel(r"$q^l / q^L$")
    caption = (
        "ratio of the backward error's 2nd moment at each conv layer to the highest layer; "
        + _resolution_note(runs, "backward_moments")
        + (
            "; each panel: the record nearest the named iteration"
            if use_it
            else "; iterations unknown: panels at the same fractions of the recorded epochs"
        )
    )
    return save_figure(fig, out_stem, f"{figure_title(runs, 'backward_profile', title)}\n{caption}")


# Every figure takes (runs, out_stem, title, layout); Zaeemzadeh Fig. 3 reads the layout's depths map, Xie Fig. 4
# its iterations.
PROBE_FIGURES: dict[str, Callable[[list[Run], Path, str, dict | None], list[Path]]] = {
    "grad_norm_ratio": plot_grad_norm_ratio,
    "backward_moments": plot_backward_moments,
    "weight_correlation": plot_weight_correlation,
    "relu_nonzero": plot_relu_nonzero,
    "bn_gamma": plot_bn_gamma,
    "singular_values": plot_singular_values,
    "sv_histograms": plot_sv_layers,
    "weight_condition": lambda runs, out, title, layout=None: _per_layer(
        runs,
        "weight_condition",
        "kappa",
        r"weight condition number $\kappa$ (HOSVD)",
        out,
        title,
        "weight condition numbers",
        layout=layout,
    ),
    "hidden_condition": lambda runs, out, title, layout=None: _per_layer(
        runs,
        "hidden_condition",
        "kappa",
        r"representation condition number $\kappa$",
        out,
        title,
        "hidden-representation condition numbers",
        layout=layout,
    ),
    "activation_dist": lambda runs, out, title, layout=None: plot_distribution(
        runs, out, title, "activation_dist"
    ),
    "weight_dist": lambda runs, out, title, layout=None: plot_distribution(runs, out, title, "weight_dist"),
    # Oyedotun Figs. 5-10 and A1-A6 from the activation_dist / weight_dist records, one model each
    "unit_distribution": plot_unit_distribution,
    # the Procrustes constraint's own procrustes_state records (normbench.outputs.constraint_figures)
    "procrustes_state": plot_procrustes_state,
    # Xie Fig. 4 from the backward_moments records (not a probe name of its own)
    "backward_profile": plot_backward_profile,
}
