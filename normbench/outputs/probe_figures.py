"""Figures of the probes recorded in run logs (``{"kind": "probe"}`` records), one builder per probe name.

Each builder takes the runs of one experiment and draws the paper's layout from their logs alone, mean over
seeds (a ± 1 std band clipped to the quantity's range where a line is drawn: :func:`normbench.outputs.figures.mean_band`)
and writes PNG, PDF and the JSON of what it drew (:func:`normbench.outputs.figures.save_figure`):

- ``grad_norm_ratio``: Zaeemzadeh Fig. 3, ||dE/dx_{l+1}|| / ||dE/dx_l|| per block over epochs (log axis),
  transition blocks dark, the others light; one row per depth and one column per architecture (+ method) when
  the runs span several depths (the paper's 3x3 grid of Plain/ResNet/ProcResNet x 20/83/164), else one panel
  per variant;
- ``backward_moments``: Xie Fig. 3, q^1/q^L (second moment of the backward error at the first conv over the
  last) over epochs;
- ``weight_correlation``: Xie Fig. 2, mean signed correlation among filters (Eq. 8) over epochs;
- ``singular_values``/``sv_histograms``: Jia Fig. 1, histogram of all weight singular values at the last probe;
- ``weight_condition``/``hidden_condition``: Oyedotun Figs. 11-13, condition number per layer at the last
  probe, log scale; infinite values drawn as crosses on the top edge;
- ``activation_dist``/``weight_dist``: Oyedotun Figs. 5-10, median and 5-95% band per layer at the last probe.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from normbench.outputs.figures import (  # noqa: E402
    figure_title,
    mean_band,
    method_label,
    model_depth,
    no_data,
    save_figure,
)
from normbench.runs.folder import Run  # noqa: E402
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
    """Yield (run, epoch, probe result) for every probe record of ``name``."""
    for run in runs:
        for rec in run.records:
            if rec.get("kind") == "probe" and name in rec.get("probes", {}):
                yield run, rec["epoch"], rec["probes"][name]


def last_probe(runs: list[Run], name: str):
    """(run, result) of the last probe record of ``name`` in every run."""
    last: dict[int, tuple] = {}
    for run, _epoch, result in probe_records(runs, name):
        last[id(run)] = (run, result)
    return list(last.values())


def plot_grad_norm_ratio(
    runs: list[Run], out_stem: Path, title: str, layout: dict | None = None
) -> list[Path]:
    """Zaeemzadeh Fig. 3. ``layout["depths"]`` (model -> depth) draws a model under another depth's row, e.g.
    ProcResNet-22 (20 layers plus its 2 projected convs) beside Plain-20 and ResNet-20."""
    depths = (layout or {}).get("depths")
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
    df = pd.DataFrame(rows)
    # Fig. 3's layout: one row per depth, one column per architecture, when the runs span several depths;
    # else one row and a column per variant. The cells are keyed by plain labels (a depth of None would
    # become NaN in a groupby key, and NaN never equals itself: every panel of one depth was blank).
    by_depth = not df.empty and df["depth"].nunique() > 1
    if df.empty:
        cells, row_keys, col_keys = {}, [""], [""]
    else:
        if by_depth:
            df["row"] = [
                f"depth {int(d)}" if d == d and d is not None else "depth unknown" for d in df["depth"]
            ]
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
            ax, sub = axes[i][j], cells.get((rv, cv))
            if sub is not None:  # a log axis: non-finite and non-positive ratios are not drawn
                sub = sub[sub["ratio"].map(math.isfinite) & (sub["ratio"] > 0)]
            if sub is None or sub.empty:
                no_data(ax)
            else:
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


def plot_backward_moments(runs, out_stem, title, layout=None):
    def first_over_last(res):
        q = [as_float(v) for v in res["q"]]
        return q[0] / q[-1] if q and q[-1] > 0 else float("nan")

    return _epoch_series(
        runs,
        "backward_moments",
        first_over_last,
        r"$q^1 / q^L$ (backward error, 2nd moment)",
        out_stem,
        title,
        "backward error, first over last layer",
        log=True,
        bounds=(0.0, None),
    )


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


def _per_layer(runs, name, key, ylabel, out_stem, title, caption, log=True) -> list[Path]:
    rows = [
        {"variant": variant(r), "seed": r.config["seed"], "layer": i, "value": as_float(layer[key])}
        for r, res in last_probe(runs, name)
        for i, layer in enumerate(res)
    ]
    df = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    drawn = False
    if not df.empty:
        finite = df[df["value"].map(math.isfinite)]
        for var, g in finite.groupby("variant", sort=False):
            # a condition number is at least 1: the ± 1 std band is clipped there
            line = mean_band(
                ax, g, "layer", "value", bounds=(1.0, None), log=log, marker="o", markersize=3, label=var
            )
            drawn = drawn or line is not None
        inf = df[df["value"] == float("inf")]
        if not inf.empty:
            top = finite["value"].max() * 3 if not finite.empty else 10.0
            ax.scatter(
                inf["layer"], [top] * len(inf), marker="x", color="crimson", label="infinite", zorder=5
            )
            drawn = True
        if drawn and log:
            ax.set_yscale("log")
    if drawn:
        ax.legend(fontsize=7)
    else:
        no_data(ax)
    ax.set_xlabel("layer (forward order)")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
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


# Every figure takes (runs, out_stem, title, layout); only Fig. 3's reads a layout (its depths map).
PROBE_FIGURES: dict[str, Callable[[list[Run], Path, str, dict | None], list[Path]]] = {
    "grad_norm_ratio": plot_grad_norm_ratio,
    "backward_moments": plot_backward_moments,
    "weight_correlation": plot_weight_correlation,
    "singular_values": plot_singular_values,
    "sv_histograms": lambda runs, out, title, layout=None: plot_singular_values(
        runs, out, title, name="sv_histograms"
    ),
    "weight_condition": lambda runs, out, title, layout=None: _per_layer(
        runs,
        "weight_condition",
        "kappa",
        r"weight condition number $\kappa$ (HOSVD)",
        out,
        title,
        "weight condition numbers",
    ),
    "hidden_condition": lambda runs, out, title, layout=None: _per_layer(
        runs,
        "hidden_condition",
        "kappa",
        r"representation condition number $\kappa$",
        out,
        title,
        "hidden-representation condition numbers",
    ),
    "activation_dist": lambda runs, out, title, layout=None: plot_distribution(
        runs, out, title, "activation_dist"
    ),
    "weight_dist": lambda runs, out, title, layout=None: plot_distribution(runs, out, title, "weight_dist"),
}
