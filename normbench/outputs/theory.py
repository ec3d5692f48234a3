"""Figures of the numerical theorem checks: one per theorem, the measured quantity against its bound or rate.

:func:`draw` takes a check's measurements (:mod:`normbench.studies.theory`) and its verdict row
(:func:`normbench.verdicts.theory.judge`) and writes ``<stem>.png``, ``.pdf`` and ``.json`` through
:func:`normbench.outputs.figures.save_figure`; the JSON holds what the panel drew (``panels``) plus the
check's own data (``check``: series and comparisons) and its verdict (``verdict``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from normbench.outputs.figures import save_figure

STYLE = {
    "measured": {"marker": "o", "linestyle": "-", "linewidth": 1.5},
    "bound": {"marker": "", "linestyle": "--", "linewidth": 2.0, "color": "tab:red"},
    "reference": {"marker": "", "linestyle": ":", "linewidth": 1.5, "color": "0.4"},
}


def _json_safe(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    return x


def draw(result: Mapping[str, Any], verdict: Mapping[str, Any], out_stem: str | Path) -> list[Path]:
    """One figure of one check: every series of ``result`` (measured: markers, bound: dashed red, reference:
    dotted grey) on the check's axes, titled with the statement's place and the verdict."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for label, s in result["series"].items():
        ys = [y if (math.isfinite(y) and (result["yscale"] != "log" or y > 0)) else math.nan for y in s["y"]]
        ax.plot(s["x"], ys, label=label, **STYLE.get(s["kind"], STYLE["measured"]))
    ax.set_xscale(result["xscale"])
    ax.set_yscale(result["yscale"])
    ax.set_xlabel(result["x_label"])
    ax.set_ylabel(result["y_label"])
    if result.get("x_ticks"):
        ax.set_xticks(range(len(result["x_ticks"])))
        ax.set_xticklabels(result["x_ticks"], rotation=35, ha="right", fontsize=7)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    premise = "" if result.get("premise", "as stated") == "as stated" else f" [premise: {result['premise']}]"
    title = f"{result['key']}: {result['where']}\n{verdict['verdict']} ({verdict['outcome']}){premise}"
    paths = save_figure(fig, out_stem, title)
    sidecar = paths[2]
    drawn = json.loads(sidecar.read_text())
    drawn["check"] = _json_safe({k: v for k, v in result.items()})
    drawn["verdict"] = _json_safe(dict(verdict))
    sidecar.write_text(json.dumps(drawn, indent=1, allow_nan=False) + "\n")
    return paths
