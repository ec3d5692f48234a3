"""One protocol check for numbers and claims alike: how our runs' recipe differs from the paper's.

Each stated difference makes a row PROXY and names the key, e.g. ``data set digits (paper: cifar10)``.
Checked today: the data set, the epochs, a stand-in architecture, fewer runs than the paper's and bf16
autocast without a passing fp32 validation. (The paper's batch size, optimizer, schedule, weight decay,
initialisation and preprocessing are not yet structured fields of the reference files, so they are not
compared: see docs/references.md.)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def _precision(cfg: dict[str, Any]) -> str:
    return (cfg.get("engine") or {}).get("precision", "fp32")


def protocol_differences(
    runs: Iterable[Any],
    *,
    dataset: str,
    epochs: int | None = None,
    runs_wanted: int | None = None,
) -> list[str]:
    """The differences between the protocol of ``runs`` (each with a ``config``) and the paper's: ``dataset``,
    ``epochs`` (None: not stated), ``runs_wanted`` (the paper's number of runs, None: not stated). Each
    distinct value of a run's config that differs is named once."""
    runs = list(runs)
    diffs: list[str] = []

    def add(text: str) -> None:
        if text not in diffs:
            diffs.append(text)

    for r in runs:
        cfg = r.config
        if cfg.get("dataset") != dataset:
            add(f"data set {cfg.get('dataset')} (paper: {dataset})")
        if epochs is not None and cfg.get("epochs") != epochs:
            add(f"{cfg.get('epochs')} epochs (paper: {epochs})")
        if cfg.get("arch", cfg.get("model")) != cfg.get("model"):
            add(f"architecture {cfg['arch']} in place of {cfg['model']}")
    if runs_wanted is not None and len(runs) < runs_wanted:
        add(f"{len(runs)} runs (paper: {runs_wanted})")
    if any(_precision(r.config) != "fp32" for r in runs):
        from normbench.engine import bf16_validated  # torch: only for the rare bf16 run

        if not all(bf16_validated(r.config) for r in runs):
            add("bf16 autocast without a passing fp32 validation (engine.bf16_validation)")
    return diffs
