"""GPU-hours of a configuration, per experiment and per paper table, from measured throughputs.

For one run of ``model`` on a data set of N training images for E epochs, the training time is
``N * E / throughput(model)`` (evaluation and probes are not counted: they add a few per cent). The
throughput of a model comes, in this order of preference, from

1. a measurement of that model: ``--throughput MODEL=IMAGES_PER_S`` or the JSON of ``normbench bench``
   (its rows for the engine asked for), taken on the GPU the estimate is for;
2. a measured reference model, scaled by forward FLOPs per image: ``throughput(model) = throughput(ref) *
   flops(ref) / flops(model)``, with FLOPs counted by :class:`torch.utils.flop_counter.FlopCounterMode` on the
   meta device at the data set's input size (32 px for CIFAR, 28 for MNIST, the crop size for ImageNet).

FLOP scaling is rough: these networks are launch-bound at CIFAR size, so a deep thin network
runs slower than its FLOPs say (pre-act ResNet-1001 has 6.0x the FLOPs of ResNet-164 and ran 7.5x slower per
image on an H100, eager bf16: 251 against 1891 images/s). The estimate says which source each number has. Method overheads (the projection,
SVB) are not included. The default reference is the one measurement available to this project:
pre-act ResNet-164, batch 128, eager fp32/TF32 on one H100, 2253 images/s, measured outside this suite with torch
2.11 (the project's design notes; no GPU run of ``normbench bench`` exists yet to replace it).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_REFERENCE = (
    "preact_resnet164",
    2253.0,
    "an H100 measurement outside this suite (eager fp32/TF32, batch 128, torch 2.11)",
)
TRAIN_IMAGES = {"digits": 1437, "mnist": 60000, "cifar10": 50000, "cifar100": 50000, "imagenet": 1281167}
SCALABLE_SIZE = 64  # a 32-px, launch-bound reference says nothing of a compute-bound 224-px network
INPUT = {"digits": (1, 16), "mnist": (1, 28), "cifar10": (3, 32), "cifar100": (3, 32), "imagenet": (3, 224)}


def forward_flops(model: str, channels: int, size: int, num_classes: int = 10) -> float:
    """Forward FLOPs of one image (a multiply-add counts 2), counted on the meta device.

    Convolutions and linear layers only, as ``torch.utils.flop_counter`` counts them: a convolution with
    output ``(C_out, H, W)``, ``C_in / groups`` input channels per group and a ``k_h x k_w`` kernel costs
    ``2 C_out H W (C_in / groups) k_h k_w``; a linear layer ``2 in out``. Read from forward hooks on a meta
    forward pass, which takes a fraction of a second where the dispatch-level counter takes seconds.
    """
    import torch
    from torch import nn

    from normbench.models.registry import get_model_info
    from normbench.models.summary import build_meta

    total = 0

    def conv(mod: nn.Conv2d, _inp, out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = mod.kernel_size
        total += 2 * out[0].numel() * (mod.in_channels // mod.groups) * kh * kw

    def linear(mod: nn.Linear, inp, _out) -> None:
        nonlocal total
        total += 2 * inp[0][0].numel() // mod.in_features * mod.in_features * mod.out_features

    net = build_meta(get_model_info(model), num_classes, channels)
    _skip_batchnorm(net)  # shape-preserving and FLOP-free here; its meta kernel is slow Python
    for mod in net.modules():
        if isinstance(mod, nn.Conv2d):
            mod.register_forward_hook(conv)
        elif isinstance(mod, nn.Linear):
            mod.register_forward_hook(linear)
    with torch.no_grad():
        net(torch.zeros(1, channels, size, size, device="meta"))
    return float(total)


def _skip_batchnorm(net) -> None:
    """Replace every batch-norm layer of ``net`` by the identity, in place (shapes are unchanged)."""
    from torch import nn

    for parent in net.modules():
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(parent, name, nn.Identity())


def read_bench(
    path: str | Path, engine: str | None = None, precision: str = "fp32", pack: int = 1
) -> dict[str, float]:
    """Images/s per model from a ``normbench bench --json`` file (rows with ``model``, ``engine`` and
    ``images_per_s``; the fastest row of a model where no engine is named). Only rows of ``precision``
    (fp32 by default: the reproduction's) and of ``pack`` seeds per process (1: one run per job) count."""
    doc = json.loads(Path(path).read_text())
    rows = doc["rows"] if isinstance(doc, dict) else doc
    out: dict[str, float] = {}
    for row in rows:
        if engine and row.get("engine") != engine:
            continue
        if row.get("precision", "fp32") != precision or row.get("pack", 1) != pack:
            continue
        out[row["model"]] = max(out.get(row["model"], 0.0), float(row["images_per_s"]))
    return out


@dataclass
class Throughputs:
    """Measured images/s per model, and the reference the others are scaled from."""

    measured: dict[str, float]
    source: str
    reference: str = DEFAULT_REFERENCE[0]

    def __post_init__(self) -> None:
        if self.reference not in self.measured:
            raise ValueError(f"reference model {self.reference!r} has no measured throughput")
        self._flops: dict[tuple[str, int, int], float] = {}

    def flops(self, model: str, channels: int, size: int) -> float:
        key = (model, channels, size)
        if key not in self._flops:
            self._flops[key] = forward_flops(model, channels, size)
        return self._flops[key]

    def images_per_s(self, model: str, dataset: str, image_size: int | None) -> tuple[float, str]:
        """(images/s, where the number comes from) for ``model`` on ``dataset``."""
        if model in self.measured:
            return self.measured[model], f"measured ({self.source})"
        channels, size = INPUT[dataset]
        size = image_size or size
        if size > SCALABLE_SIZE:
            return float(
                "nan"
            ), f"not measured: FLOP scaling from {self.reference} at 32 px does not carry to {size} px"
        ref = self.flops(self.reference, 3, 32)
        ratio = ref / self.flops(model, channels, size)
        return self.measured[self.reference] * ratio, f"{self.reference} scaled by FLOPs ({ratio:.3g}x)"


def estimate(config: dict[str, Any], tp: Throughputs) -> list[dict[str, Any]]:
    """One row per (experiment, model): runs, epochs, images/s, GPU-hours, and the throughput's source.

    Proxy configurations are estimated at the paper's scale of their own data set (``dataset``), i.e. what
    they run; give the paper configuration to estimate a reproduction.
    """
    rows = []
    for name, exp in config["experiments"].items():
        dataset = exp["dataset"]
        grid = exp.get("grid")
        cells = len(grid["c"]) * len(grid["d"]) if grid else 1  # a Fig. 2 study trains one net per cell
        for model in exp["models"]:
            arch = exp["architectures"].get(model, model)
            size = exp["image_size"] if dataset in ("imagenet", "digits") else None
            ips, source = tp.images_per_s(arch, dataset, size)
            runs = len(exp["methods"]) * len(exp["seeds"])
            seconds = TRAIN_IMAGES[dataset] * exp["epochs"] * cells / ips
            rows.append(
                {
                    "experiment": name,
                    "reproduces": list(exp["reproduces"]),
                    "model": model,
                    "dataset": dataset,
                    "runs": runs,
                    "epochs": exp["epochs"],
                    "images_per_s": ips,
                    "source": source,
                    "gpu_hours": runs * seconds / 3600.0,
                }
            )
    return rows


def per_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """GPU-hours per paper table: every experiment a table draws on counts in full for that table (an
    experiment feeding two tables is counted in both; the total counts it once). ``unestimated`` counts the
    table's (experiment, model) rows without an estimate, which ``gpu_hours`` leaves out."""
    tables: dict[str, dict[str, Any]] = {}
    for r in rows:
        for table in r["reproduces"]:
            t = tables.setdefault(
                table, {"table": table, "experiments": set(), "gpu_hours": 0.0, "unestimated": 0}
            )
            t["experiments"].add(r["experiment"])
            if math.isfinite(r["gpu_hours"]):
                t["gpu_hours"] += r["gpu_hours"]
            else:
                t["unestimated"] += 1
    return [
        {**t, "experiments": len(t["experiments"])} for t in sorted(tables.values(), key=lambda t: t["table"])
    ]


def format_hours(h: float) -> str:
    if not math.isfinite(h):
        return "-"
    return f"{h:.2f}" if h < 10 else f"{h:,.0f}"
