"""Training-time overhead of the Procrustes projection (Zaeemzadeh et al. 2020, Sec. 4).

The paper: projecting every 2 iterations adds 7.6% to the training time of ResNet-164 and 3.5% of ResNet-1001,
against 53% and 23% for an SVD-based projection (GPU, batch 128). This script measures, in one run, for each
depth pair (pre-act ResNet-164 / ProcResNet-166, ResNet-1001 / ProcResNet-1003):

- ``t_step``: one SGD step (forward, backward, momentum update) of the plain pre-act ResNet and of ProcResNet
  without projection, median over ``--steps`` timed steps after ``--warmup`` (random CIFAR-shaped batch);
- ``t_proj``: one application of the projection to the three projected convs (``ProcrustesProjection.project``),
  Newton-Schulz fast path and exact SVD path, median over ``--proj-reps`` calls;
- the overhead ratios ``1 + t_proj / (every * t_step)`` against ProcResNet without projection and against the
  plain ResNet (whose step time differs from ProcResNet's), and, with ``--end-to-end``, measured step-time
  ratios of ProcResNet with each projection schedule (every ``--every`` steps), interleaved round by round
  with the unprojected runs so that machine drift affects all of them alike.

Usage (CPU, two threads)::

    python benchmarks/bench_projection.py --depths 164 1001 --batch 128 --threads 2 --out /tmp/bench.json

The component ratios are the precise numbers: the end-to-end ratios (median and minimum over rounds) carry the
step-to-step noise of the machine, which on a shared CPU is larger than the projection's cost. On a loaded CPU
use ``--threads 1``: several threads on oversubscribed cores make small batched kernels (the projection)
erratically slow.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from normbench.methods.procrustes import ProcrustesProjection  # noqa: E402
from normbench.models import MODELS, build_model  # noqa: E402

PAIRS = {164: ("preact_resnet164", "procresnet166"), 1001: ("preact_resnet1001", "procresnet1003")}
PAPER = {164: {"newton_schulz": 1.076, "svd": 1.53}, 1001: {"newton_schulz": 1.035, "svd": 1.23}}


class Stepper:
    """One model, its optimizer and a fixed random batch; ``step()`` runs one SGD step (+ after_step)."""

    def __init__(self, name: str, batch: int, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.model = build_model(name)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(batch, 3, 32, 32, generator=g)
        self.y = torch.randint(0, 10, (batch,), generator=g)
        self.count = 0

    def step(self, method: ProcrustesProjection | None = None) -> float:
        t = time.perf_counter()
        loss = nn.functional.cross_entropy(self.model(self.x), self.y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if method is not None:
            method.after_step(self.model, self.count)
        self.count += 1
        return time.perf_counter() - t


def time_projection(model: nn.Module, method: ProcrustesProjection, reps: int) -> float:
    method.project(model)  # warm start (first call of each layer is exact) and lazy initialisation
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        method.project(model)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_pair(depth: int, args: argparse.Namespace) -> dict[str, Any]:
    base_name, proc_name = PAIRS[depth]
    missing = [n for n in (base_name, proc_name) if n not in MODELS]
    if missing:
        raise SystemExit(f"models {missing} are not registered yet (normbench.models.MODELS)")
    base, proc = Stepper(base_name, args.batch), Stepper(proc_name, args.batch)
    methods = {path: ProcrustesProjection(every=args.every, path=path, iterations=args.iterations)
               for path in ("newton_schulz", "svd")}
    for m in methods.values():
        m.attach(proc.model)
    for _ in range(args.warmup):
        base.step()
        proc.step()  # also records the FFT grids of the projected convs
    t_proj = {p: time_projection(proc.model, m, args.proj_reps) for p, m in methods.items()}

    runs: dict[str, list[float]] = {"resnet": [], "procresnet": []}
    if args.end_to_end:
        runs.update({f"procresnet+{p}": [] for p in methods})
    for _ in range(args.steps):
        # One round: every configuration runs `every` consecutive steps, so each projected run applies
        # exactly one projection per round.
        for key in runs:
            stepper = base if key == "resnet" else proc
            method = methods.get(key.split("+", 1)[1]) if "+" in key else None
            runs[key].append(sum(stepper.step(method) for _ in range(args.every)) / args.every)
    t_step = {k: statistics.median(v) for k, v in runs.items()}
    t_min = {k: min(v) for k, v in runs.items()}  # the least disturbed round: robust on a shared machine

    out: dict[str, Any] = {
        "models": [base_name, proc_name],
        "step_seconds": t_step,
        "step_seconds_min": t_min,
        "step_seconds_all": runs,
        "projection_seconds": t_proj,
        "projected_layers": [[n, list(m.weight.shape), m.grid] for n, m in methods["svd"].layers(proc.model)],
        "component_ratio_vs_procresnet": {
            p: 1 + t / (args.every * t_step["procresnet"]) for p, t in t_proj.items()},
        "component_ratio_vs_resnet": {
            p: (t_step["procresnet"] + t / args.every) / t_step["resnet"] for p, t in t_proj.items()},
        "procresnet_over_resnet": t_step["procresnet"] / t_step["resnet"],
        "paper_ratio": PAPER[depth],
    }
    if args.end_to_end:
        out["end_to_end_ratio_vs_procresnet"] = {
            p: t_step[f"procresnet+{p}"] / t_step["procresnet"] for p in methods}
        out["end_to_end_ratio_vs_resnet"] = {p: t_step[f"procresnet+{p}"] / t_step["resnet"] for p in methods}
        out["end_to_end_ratio_vs_procresnet_min"] = {
            p: t_min[f"procresnet+{p}"] / t_min["procresnet"] for p in methods}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--depths", type=int, nargs="+", default=[164, 1001], choices=sorted(PAIRS))
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=3, help="timed rounds per configuration")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--every", type=int, default=2, help="project every this many steps (paper: 2)")
    ap.add_argument("--iterations", type=int, default=10, help="Newton-Schulz iterations")
    ap.add_argument("--proj-reps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--end-to-end", action="store_true", help="also time steps with each projection")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result: dict[str, Any] = {
        "device": "cpu", "threads": torch.get_num_threads(), "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(), "batch": args.batch, "every": args.every,
        "newton_schulz_iterations": args.iterations, "pairs": {},
    }
    for depth in args.depths:
        t0 = time.time()
        result["pairs"][str(depth)] = r = bench_pair(depth, args)
        print(f"ResNet-{depth} vs {r['models'][1]} (batch {args.batch}, {time.time() - t0:.0f}s):", flush=True)
        print(f"  step: resnet {r['step_seconds']['resnet']:.3f}s, procresnet {r['step_seconds']['procresnet']:.3f}s;"
              f" projection: newton-schulz {1e3 * r['projection_seconds']['newton_schulz']:.2f} ms,"
              f" svd {1e3 * r['projection_seconds']['svd']:.2f} ms", flush=True)
        for p in ("newton_schulz", "svd"):
            line = (f"  {p:>13}: x{r['component_ratio_vs_procresnet'][p]:.5f} vs ProcResNet without projection,"
                    f" x{r['component_ratio_vs_resnet'][p]:.4f} vs ResNet-{depth} (paper x{r['paper_ratio'][p]})")
            if args.end_to_end:
                line += (f"; end-to-end x{r['end_to_end_ratio_vs_procresnet'][p]:.4f} (median),"
                         f" x{r['end_to_end_ratio_vs_procresnet_min'][p]:.4f} (min)")
            print(line, flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
