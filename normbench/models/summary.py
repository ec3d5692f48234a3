"""Counting what the registry promises: depth as the papers count it, parameters against the papers' figures,
and the parameter-count table of ``docs/models.md``.

Tolerance on a paper's parameter count (:func:`params_tolerance`): our count at the paper's number of classes
must round to the printed figure or lie within 1% of it, whichever is wider: ``max(half a unit of the last
printed digit, 1%)``. "2.5M" allows +-50,000 (2%), "1.71M" allows +-17,100 (1%), "36.5M" +-365,000 (1%).
Counts with ``params_deviation`` set miss it on purpose; their ``params_note`` says why.

Counting happens on the ``meta`` device, so even WRN-28-16 (94M) and the 1000-layer networks are counted
without allocating memory, with ``torch.nn.init``'s initialisers switched off while building (on meta tensors
they draw nothing, yet each call still costs the dispatch through torch's reference implementations: about
half of the building time of the 1000-layer networks). Counts are cached per (model, number of classes) for
the process: ``python -m normbench.models.summary`` prints the table, ``--write docs/models.md`` refreshes it
in place (between its markers).
"""

from __future__ import annotations

import argparse
import functools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import torch
from torch import nn

from normbench.models.registry import MODELS, ModelInfo, count_params

TABLE_BEGIN = (
    "<!-- models-table:begin (generated: python -m normbench.models.summary --write docs/models.md) -->"
)
TABLE_END = "<!-- models-table:end -->"
REL_TOL = 0.01


def count_depth(model: nn.Module, rule: str = "main") -> int:
    """Depth of ``model`` under ``rule`` (see :class:`~normbench.models.registry.ModelInfo`).

    ``"main"``: ``nn.Conv2d`` and ``nn.Linear`` modules, except those inside a ``shortcut`` or ``head_conv``;
    ``"conv"``: every ``nn.Conv2d``; ``"longest"``: ``model.longest_path()``.
    """
    if rule == "longest":
        return int(model.longest_path())  # type: ignore[operator]
    if rule == "conv":
        return sum(isinstance(m, nn.Conv2d) for m in model.modules())
    if rule != "main":
        raise ValueError(f"unknown depth rule {rule!r}")
    count = 0
    for name, mod in model.named_modules():
        parts = name.split(".")
        if isinstance(mod, nn.Conv2d | nn.Linear) and "shortcut" not in parts and "head_conv" not in parts:
            count += 1
    return count


def params_tolerance(info: ModelInfo) -> int:
    """Absolute tolerance on ``info.paper_params``: max(half a unit of the printed last digit, 1%)."""
    if info.paper_params is None:
        raise ValueError(f"{info.name} has no paper parameter count")
    half_unit = 0
    text = info.paper_params_text.strip()
    if text:
        scale = {"K": 10**3, "M": 10**6}.get(text[-1].upper(), 1)
        number = Decimal(text.rstrip("KkMm"))
        exponent = number.as_tuple().exponent
        assert isinstance(exponent, int)
        half_unit = int(Decimal(10) ** exponent * scale / 2)
    return max(half_unit, math.ceil(REL_TOL * info.paper_params))


def _unchanged(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    return tensor


@contextmanager
def no_init() -> Iterator[None]:
    """Every public in-place initialiser of ``torch.nn.init`` (``kaiming_normal_``, ``zeros_``, ...) a no-op.

    For building on the meta device only: shapes, hence parameter counts, do not depend on initial values.
    It swaps module attributes, so it covers calls written ``nn.init.f(...)`` (ours and torch's layers), not
    a function imported by name, and it is not thread-safe.
    """
    names = [
        n for n in dir(nn.init) if n.endswith("_") and not n.startswith("_") and callable(getattr(nn.init, n))
    ]
    saved = {n: getattr(nn.init, n) for n in names}
    try:
        for n in names:
            setattr(nn.init, n, _unchanged)
        yield
    finally:
        for n, f in saved.items():
            setattr(nn.init, n, f)


def build_meta(info: ModelInfo, num_classes: int, in_channels: int = 3) -> nn.Module:
    """Build a registered network with its parameters on the meta device (shapes only, no memory, no init)."""
    with torch.device("meta"), no_init():
        return info.builder(num_classes=num_classes, in_channels=in_channels)


@functools.cache
def meta_counts(name: str, num_classes: int) -> tuple[int, int, str]:
    """(parameters, depth under the model's depth rule, class path) of ``name`` built on meta; cached."""
    info = MODELS[name]
    model = build_meta(info, num_classes)
    return (
        count_params(model),
        count_depth(model, info.depth_rule),
        f"{type(model).__module__}.{type(model).__qualname__}",
    )


def summary_row(info: ModelInfo) -> dict[str, Any]:
    """One row of the parameter-count table: our counts, the paper's, delta, whether within tolerance."""
    ours, depth_counted, cls = meta_counts(info.name, info.paper_classes)
    ours10 = ours if info.paper_classes == 10 else meta_counts(info.name, 10)[0]
    row: dict[str, Any] = {
        "name": info.name,
        "class": cls,
        "paper": info.paper,
        "source": info.source,
        "family": info.family,
        "depth": info.depth,
        "depth_counted": depth_counted,
        "params_10": ours10,
        "paper_classes": info.paper_classes,
        "params_paper_classes": ours,
        "paper_params": info.paper_params,
        "paper_params_text": info.paper_params_text,
        "delta_pct": None,
        "within_tol": None,
        "deviation": info.params_deviation,
        "note": info.params_note,
    }
    if info.paper_params is not None:
        row["delta_pct"] = 100.0 * (ours - info.paper_params) / info.paper_params
        row["within_tol"] = abs(ours - info.paper_params) <= params_tolerance(info)
    return row


def _millions(n: int) -> str:
    return f"{n / 1e6:.3f}M"


def markdown_table(rows: list[dict[str, Any]] | None = None) -> str:
    """The table of ``docs/models.md`` (between its markers), notes listed below it."""
    rows = [summary_row(info) for info in MODELS.values()] if rows is None else rows
    lines = [
        "| name | paper | source | depth | params ours (10 classes) | ours (paper's classes) "
        "| paper params | delta % | check |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for r in rows:
        at_paper = (
            f"{_millions(r['params_paper_classes'])} ({r['paper_classes']})"
            if r["paper_classes"] != 10
            else "same"
        )
        if r["paper_params"] is None:
            paper, delta, check = "-", "-", "no paper count"
        else:
            paper = r["paper_params_text"] or _millions(r["paper_params"])
            delta = f"{r['delta_pct']:+.2f}"
            check = "deviation, see note" if r["deviation"] else "within tolerance"
        if r["note"]:
            notes.append(f"- **{r['name']}**: {r['note']}")
        lines.append(
            f"| {r['name']} | {r['paper']} | {r['source']} | {r['depth']} | {_millions(r['params_10'])} "
            f"| {at_paper} | {paper} | {delta} | {check} |"
        )
    return "\n".join([TABLE_BEGIN, *lines, "", "Notes on the counts:", "", *notes, TABLE_END])


def write_table(path: str | Path) -> None:
    """Replace the table between the markers of ``path`` (a markdown file) by the current one."""
    path = Path(path)
    text = path.read_text()
    if TABLE_BEGIN not in text or TABLE_END not in text:
        raise ValueError(f"{path} has no models-table markers")
    head, rest = text.split(TABLE_BEGIN, 1)
    tail = rest.split(TABLE_END, 1)[1]
    path.write_text(head + markdown_table() + tail)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print (or --write into a markdown file) the models table.")
    parser.add_argument("--write", metavar="FILE", help="replace the table between the markers of FILE")
    args = parser.parse_args(argv)
    if args.write:
        write_table(args.write)
    else:
        print(markdown_table())


if __name__ == "__main__":
    main()
