"""One protocol check for numbers and claims alike: how our runs' recipe differs from the paper's.

Each stated difference makes a row PROXY and names the key, e.g. ``data set digits (paper: cifar10)`` or
``init he (paper: orthogonal)``. Checked: the data set, the epochs, a stand-in architecture, fewer runs than
the paper's, bf16 autocast without a passing fp32 validation, and every non-null key of the protocol's
``recipe`` (read from the paper's text, ``docs/references.md``) against the run's config: batch size,
optimizer, initial learning rate, momentum, Nesterov, weight decay, initialisation, input preprocessing and
augmentation. A key the paper is silent on (null) is never a difference. Not compared: the learning-rate
schedule beyond its initial value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from normbench.runs.folder import STREAMED_DATASETS


def _precision(cfg: dict[str, Any]) -> str:
    return (cfg.get("engine") or {}).get("precision", "fp32")


def augment_name(augment: dict[str, Any] | None, image_size: int | None = None) -> str:
    """A run's augmentation in the reference files' words, parts joined by ``_``: ``pad4_crop`` (a random
    translation by up to 4 px), ``crop224`` (a uniform random 224 crop of the 256-resized image,
    ``augment.crop: resize_random``), ``rrcrop`` (a random-resized crop, the image folders' default),
    ``flip``, ``color`` (PCA lighting); ``none`` when there is none. E.g. ``pad4_crop_flip``,
    ``crop224_flip_color``. ``image_size`` names the crop of image-folder runs (None: a tensor data set)."""
    augment = augment or {}
    parts = [f"pad{augment['pad']}_crop"] if augment.get("pad") else []
    if image_size is not None:
        crop = augment.get("crop", "random_resized")
        parts.append(f"crop{image_size}" if crop == "resize_random" else "rrcrop")
    if augment.get("flip", False):
        parts.append("flip")
    if augment.get("lighting", 0):
        parts.append("color")
    return "_".join(parts) or "none"


def run_recipe(cfg: dict[str, Any]) -> dict[str, Any]:
    """The run's recipe in the keys of a protocol's ``recipe`` block (its protocol fingerprint)."""
    opt = cfg.get("optimizer") or {}
    return {
        "batch_size": cfg.get("batch_size"),
        "optimizer": opt.get("name"),
        "lr": opt.get("lr"),
        "momentum": opt.get("momentum", 0.0),
        "nesterov": bool(opt.get("nesterov", False)),
        "weight_decay": opt.get("weight_decay", 0.0),
        # Xie's ortho_init method initialises orthogonally whatever the init key says
        "init": "orthogonal"
        if "ortho_init" in str(cfg.get("method", "")).split("+")
        else cfg.get("init", "he"),
        "preprocess": cfg.get("preprocess", "per_channel"),
        "augment": augment_name(
            cfg.get("augment"),
            (cfg.get("image_size") or 224) if cfg.get("dataset") in STREAMED_DATASETS else None,
        ),
    }


AUGMENT_UNSTATED = "cited"
"""The paper points to a cited work's augmentation without describing it: never a stated difference."""


def _same(ours: Any, paper: Any, key: str = "") -> bool:
    if key == "augment":
        if paper == AUGMENT_UNSTATED:
            return True
        if paper == "shift_flip":  # flip plus a shift of unstated size: any padded random crop with flip
            return ours.startswith("pad") and ours.endswith("_crop_flip")
    if isinstance(paper, bool) or isinstance(ours, bool):
        return bool(ours) == bool(paper)
    if isinstance(paper, (int, float)) and isinstance(ours, (int, float)):
        return math.isclose(float(ours), float(paper), rel_tol=1e-9, abs_tol=1e-12)
    return ours == paper


def recipe_differences(cfg: dict[str, Any], recipe: dict[str, Any] | None) -> list[str]:
    """``key ours (paper: theirs)`` for every key the paper states (non-null) that the run does otherwise."""
    ours = run_recipe(cfg)
    return [
        f"{key} {ours.get(key)} (paper: {want})"
        for key, want in (recipe or {}).items()
        if want is not None and key in ours and not _same(ours[key], want, key)
    ]


def protocol_differences(
    runs: Iterable[Any],
    *,
    dataset: str,
    epochs: int | None = None,
    runs_wanted: int | None = None,
    recipe: dict[str, Any] | None = None,
) -> list[str]:
    """The differences between the protocol of ``runs`` (each with a ``config``) and the paper's: ``dataset``,
    ``epochs`` (None: not stated), ``runs_wanted`` (the paper's number of runs, None: not stated) and the
    ``recipe`` block (:func:`recipe_differences`). Each distinct difference is named once."""
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
        for d in recipe_differences(cfg, recipe):
            add(d)
    if runs_wanted is not None and len(runs) < runs_wanted:
        add(f"{len(runs)} runs (paper: {runs_wanted})")
    if any(_precision(r.config) != "fp32" for r in runs):
        from normbench.training.engine import bf16_validated  # torch: only for the rare bf16 run

        if not all(bf16_validated(r.config) for r in runs):
            add("bf16 autocast without a passing fp32 validation (engine.bf16_validation)")
    return diffs
