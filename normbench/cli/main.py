"""The ``normbench`` command line: one subcommand per pipeline step, each a thin call into the package.

Every Snakemake rule is one of these calls, and a user can run any piece by hand, e.g.::

    normbench models                                   # the registry, with parameter counts
    normbench train --config config/config.yaml --experiment gap --model plain20 --seed 0
    normbench tables results/smoke/runs --out-dir results/smoke/tables
    normbench compare results/smoke/runs --out-dir results/smoke --strict
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

EPILOG = "Run 'normbench <command> --help' for the options of one command."


def _add_runs_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "runs", nargs="+", help="metrics.jsonl files, or folders searched for them (e.g. results/smoke/runs)"
    )


def cmd_data(args: argparse.Namespace) -> int:
    from normbench.training.data import load_dataset, save_prepared

    data = load_dataset(args.dataset, args.root, download=args.download, image_size=args.image_size)
    save_prepared(data, args.out)
    print(
        f"{args.dataset}: {data.num_train} train / {data.num_test} test images, "
        f"{data.channels}x{data.image_size}x{data.image_size}, {data.num_classes} classes -> {args.out}"
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from normbench.config import RunSpec, load_config, results_dir, run_config
    from normbench.runs.folder import DISK_ERRNOS
    from normbench.training.trainer import PackError, RunFolderBusy, train_pack

    EX_TEMPFAIL = 75  # another process writes a run folder: try again later

    if args.spec:
        if len(args.out or []) != len(args.spec):
            raise SystemExit(
                f"normbench train: give one --out per --spec ({len(args.spec)} --spec, "
                f"{len(args.out or [])} --out)"
            )
        runs = []
        for text, out in zip(args.spec, args.out, strict=True):
            try:
                runs.append((json.loads(text), out))
            except json.JSONDecodeError as err:
                raise SystemExit(f"normbench train: --spec for {out} is not valid JSON: {err}") from None
    else:
        if not (args.config and args.experiment and args.model and args.seed):
            raise SystemExit(
                "normbench train: give --spec, or --config with --experiment, --model and --seed"
            )
        if args.out and len(args.out) != len(args.seed):
            raise SystemExit("normbench train: give one --out per --seed, or none")
        config = load_config(args.config)
        runs = []
        for i, seed in enumerate(args.seed):
            spec = RunSpec(args.experiment, args.model, args.method, seed)
            runs.append(
                (
                    run_config(config, spec),
                    args.out[i] if args.out else results_dir(config) / "runs" / spec.path,
                )
            )
    try:
        results = train_pack(runs, data_path=args.data, force=args.force)
    except PackError as err:
        raise SystemExit(f"normbench train: {err}") from None
    except RunFolderBusy as err:
        print(f"normbench train: error: {err}", file=sys.stderr)
        return EX_TEMPFAIL
    except OSError as err:
        if err.errno not in DISK_ERRNOS:
            raise
        print(f"normbench train: error: {err.filename}: {err.strerror}", file=sys.stderr)
        return 1
    for (_, out), result in zip(runs, results, strict=True):
        if result.get("finished"):
            print(
                f"{out}: complete ({result['status']} after {result['epoch']} epochs); nothing to do "
                "(--force retrains it)"
            )
        else:
            print(f"{out}: {result['status']} after {result['epoch']} epochs")
    return 0


def damaged_warning(command: str) -> Callable[[str], None]:
    """What a reading command does with a damaged run log: one warning line on stderr naming it (file, line,
    field) and saying the run is excluded; the comparison counts such runs in its rows."""

    def warn(message: str) -> None:
        print(f"normbench {command}: warning: {message}; this run is excluded (damaged)", file=sys.stderr)

    return warn


def readable_runs(paths: list[str], command: str) -> list:
    """The runs below ``paths`` whose logs can be read; each damaged one is named on stderr and left out."""
    from normbench.runs.folder import load_runs

    return [r for r in load_runs(paths, on_damaged=damaged_warning(command)) if not r.damaged]


def cmd_tables(args: argparse.Namespace) -> int:
    from normbench.outputs.tables import write_tables

    for path in write_tables(readable_runs(args.runs, "tables"), args.out_dir):
        print(path)
    return 0


def cmd_figures(args: argparse.Namespace) -> int:
    from normbench.outputs.figures import FIGURES
    from normbench.outputs.probe_figures import PROBE_FIGURES

    if args.figure not in FIGURES:
        raise ValueError(f"unknown figure {args.figure!r}; valid: {', '.join(FIGURES)}")
    if args.probe and args.probe not in PROBE_FIGURES:
        raise ValueError(f"unknown probe {args.probe!r}; valid: {', '.join(PROBE_FIGURES)}")
    if not (args.out_dir or args.out_stem):
        raise ValueError("figures: give --out-dir (a figure per experiment) or --out-stem (one figure)")
    layout = json.loads(args.layout) if args.layout else None
    runs = readable_runs(args.runs, "figures")
    if args.out_stem:  # one figure of every run given (a paper figure spanning experiments)
        groups = [(args.title or Path(args.out_stem).name, runs, Path(args.out_stem))]
    else:
        groups = [
            (exp, [r for r in runs if r.config["experiment"] == exp], Path(args.out_dir) / exp / name)
            for exp in dict.fromkeys(r.config["experiment"] for r in runs)
            for name in [args.probe or args.figure]
        ]
    for title, sub, stem in groups:
        if args.probe:
            paths = PROBE_FIGURES[args.probe](sub, stem, title, layout)
        else:
            paths = FIGURES[args.figure](sub, stem, title, layout)
        for path in paths:
            print(path)
    return 0


def cmd_fig2(args: argparse.Namespace) -> int:
    from normbench.config import RunSpec, load_config
    from normbench.studies.fig2 import default_out, grid_run, grid_run_config

    if args.spec:
        cfg, out = json.loads(args.spec), args.out
    else:
        if not (args.config and args.experiment and args.seed is not None):
            raise SystemExit("normbench fig2: give --spec, or --config with --experiment and --seed")
        config = load_config(args.config)
        spec = RunSpec(args.experiment, args.model, args.method, args.seed)
        cfg = grid_run_config(config, spec)
        out = args.out or default_out(config, spec)
    if not out:
        raise SystemExit("normbench fig2: --out is required with --spec")
    result = grid_run(cfg, out, data_path=args.data)
    print(f"{out}: {result['status']}, {result['cells']} grid cells")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from normbench.references import load_claims, load_references
    from normbench.runs.folder import load_runs
    from normbench.verdicts.claims import claim_verdict_counts, evaluate_claims, write_claims
    from normbench.verdicts.claims import strict_failures as claim_strict_failures
    from normbench.verdicts.numbers import compare, strict_failures, verdict_counts, write_comparison

    refs = load_references(args.references or None)
    claim_list = load_claims(args.references or None)
    runs = load_runs(args.runs, on_damaged=damaged_warning("compare"))  # counted and excluded in the rows
    df = compare(refs, runs)
    claims = evaluate_claims(claim_list, runs)
    for path in write_comparison(df, args.out_dir):
        print(path)
    print("trained numbers:")
    print(verdict_counts(df).to_string(index=False))
    print("structure (registry checks, not trained results):")
    print(verdict_counts(df, "structure").to_string(index=False))
    for path in write_claims(claims, args.out_dir):
        print(path)
    print("claims:")
    print(claim_verdict_counts(claims).to_string(index=False))
    if args.strict:
        status = 0
        bad = strict_failures(df)
        if len(bad):
            kinds = ", ".join(f"{k} {v}" for k, v in bad["kind"].value_counts().items())
            print(f"--strict: {len(bad)} reference numbers DEVIATE ({kinds}):", file=sys.stderr)
            cols = ["id", "kind", "paper_value", "ours", "tolerance"]
            print(bad[cols].to_string(index=False), file=sys.stderr)
            status = 1
        bad_claims = claim_strict_failures(claims)
        if len(bad_claims):
            print(f"--strict: {len(bad_claims)} claims DEVIATE:", file=sys.stderr)
            print(bad_claims[["id", "measured"]].to_string(index=False), file=sys.stderr)
            status = 1
        return status
    return 0


def cmd_paper_tables(args: argparse.Namespace) -> int:
    from normbench.outputs.paper_tables import write_all
    from normbench.references import load_references

    for path in write_all(args.comparison, args.out, load_references(args.references or None)):
        print(path)
    return 0


def _throughputs(args: argparse.Namespace):
    """The measured throughputs ``estimate`` scales from: --bench, --throughput, else the H100 reference."""
    from normbench.studies.estimate import DEFAULT_REFERENCE, Throughputs, read_bench

    measured, sources = {}, []
    if not args.bench and not args.throughput:
        measured[DEFAULT_REFERENCE[0]] = DEFAULT_REFERENCE[1]
        sources.append(DEFAULT_REFERENCE[2])
    if args.bench:
        measured.update(read_bench(args.bench, args.engine, args.precision, args.pack))
        sources.append(f"normbench bench {args.bench}")
    for item in args.throughput:
        model, _, value = item.partition("=")
        try:
            measured[model] = float(value)
        except ValueError:
            raise ValueError(f"--throughput {item!r}: expected MODEL=IMAGES_PER_S") from None
        sources.append("--throughput")
    return Throughputs(measured, "; ".join(sources), reference=args.reference)


def cmd_estimate(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from normbench.config import load_config
    from normbench.studies.estimate import estimate, format_hours, per_table
    from normbench.verdicts.formatting import number

    tp = _throughputs(args)
    rows = estimate(load_config(args.config), tp)
    tables = per_table(rows)
    known = [r["gpu_hours"] for r in rows if math.isfinite(r["gpu_hours"])]
    total = sum(known)
    print(f"Throughputs: {tp.source}. Training only (no evaluation, probes or method overheads).\n")
    keys = ["experiment", "model", "runs", "epochs"]
    print(
        tabulate(
            [
                [r[k] for k in keys]
                + [number(r["images_per_s"], 0), format_hours(r["gpu_hours"]), r["source"]]
                for r in rows
            ],  # fmt: skip
            headers=[*keys, "images/s", "GPU-hours", "throughput from"],
        )
    )
    print()
    print(
        tabulate(
            [
                [t["table"], t["experiments"], format_hours(t["gpu_hours"])]
                + [f"+ {t['unestimated']} not estimated" if t["unestimated"] else ""]
                for t in tables
            ],
            headers=["paper table", "experiments", "GPU-hours", ""],
        )
    )
    missing = len(rows) - len(known)
    print(
        f"\ntotal: {format_hours(total)} GPU-hours over {len(known)} experiment x model rows"
        + (f"; {missing} rows not estimated (no measurement at their input size)" if missing else "")
    )
    if args.json:
        result = {"source": tp.source, "rows": rows, "tables": tables, "total": total}
        Path(args.json).write_text(json.dumps(result, indent=2, default=str).replace("NaN", "null"))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from normbench.outputs.report import build_report

    out = build_report(args.results, args.out, title=args.title or Path(args.results).name)
    print(out)
    return 0


def cmd_theory(args: argparse.Namespace) -> int:
    import time

    from normbench.outputs.theory import draw
    from normbench.studies.theory import CHECKS, default_scale, run_check
    from normbench.verdicts.theory import judge, write_verdicts

    scale = args.scale or default_scale(args.name)
    keys = args.only or list(CHECKS)
    out_dir = Path(args.out_dir)
    rows = []
    for key in keys:
        start = time.perf_counter()
        result = run_check(key, scale)
        row = judge(result)
        row["seconds"] = round(time.perf_counter() - start, 3)
        row["figure"] = f"{key}.png"
        draw(result, row, out_dir / key)
        rows.append(row)
        print(f"{key}: {row['verdict']} ({row['summary']}) [{row['seconds']:.2f} s]")
    write_verdicts(rows, out_dir / "verdicts.json")
    print(f"{out_dir / 'verdicts.json'}: {len(rows)} checks at scale {scale}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from normbench.studies.bench import format_table, run_bench, validate_bf16

    if args.validate_bf16:
        from normbench.config import RunSpec, load_config, run_config

        if not (args.config and args.experiment and args.model):
            raise SystemExit("normbench bench --validate-bf16: give --config, --experiment and --model")
        config = load_config(args.config)
        cfg = run_config(config, RunSpec(args.experiment, args.model, args.method, args.seed))
        verdict = validate_bf16(
            cfg, args.validate_bf16, args.epochs, args.tolerance, data_path=args.data, work_dir=args.work_dir
        )
        print(json.dumps(verdict, indent=1, sort_keys=True))
        return 0 if verdict["passed"] else 1
    result = run_bench(
        args.models,
        args.device,
        args.batch_size,
        args.steps,
        args.warmup,
        args.precision,
        args.deterministic,
        args.repeats,
        args.pack,
    )
    print(format_table(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(args.json)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from normbench.models import MODELS
    from normbench.models.summary import summary_row

    rows = []
    for info in MODELS.values():
        if args.family and info.family != args.family:
            continue
        row = summary_row(info)  # built on the meta device: no memory, even for the 1000-layer nets
        row["params"] = row["params_paper_classes"]
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    table = [
        [
            r["name"],
            r["paper"],
            r["depth"],
            r["paper_classes"],
            f"{r['params'] / 1e6:.3f}M",
            r["paper_params_text"] or "-",
            "-" if r["delta_pct"] is None else f"{r['delta_pct']:+.2f}%",
            "" if r["within_tol"] is None else ("ok" if r["within_tol"] else "DEVIATES (see docs/models.md)"),
        ]
        for r in rows
    ]
    print(tabulate(table, headers=["name", "paper", "depth", "classes", "params", "paper", "delta", "check"]))
    return 0


def cmd_references(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from normbench.references import load_references

    refs = [r for r in load_references() if not args.paper or r.paper == args.paper]
    if args.json:
        print(json.dumps([r.to_dict() for r in refs], indent=1))
    else:
        print(
            tabulate(
                [
                    [r.paper, r.label, r.row, r.column, r.metric, r.statistic, r.value, r.units, r.runs]
                    for r in refs
                ],
                headers=["paper", "table", "row", "column", "metric", "statistic", "value", "units", "runs"],
            )
        )
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from normbench.config import load_config, run_specs

    config = load_config(args.config)
    for spec in run_specs(config):
        print(spec.path)
    return 0


def _plan_verdict(row: dict, why_not: str) -> str:
    if row["decidable"]:
        return "yes"
    if row.get("missing_probe"):
        return f"no (the {row['missing_probe']!r} probe is not recorded)"
    return f"no ({why_not})"


def cmd_plan(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from normbench.config import load_config
    from normbench.references import load_claims, load_references
    from normbench.verdicts.plan import plan_claims, plan_numbers

    config = load_config(args.config)
    numbers = plan_numbers(config, load_references())
    claims = plan_claims(config, load_claims())
    if args.json:
        print(json.dumps({"numbers": numbers, "claims": claims}, indent=1))
        return 0
    rows = [
        [
            r["id"],
            r["planned_runs"],
            f"{r['sigma']:.3g} ({r['sigma_source']})",
            f"{r['expected_half_width']:.3g}",
            f"{r['floor']:g}",
            _plan_verdict(r, f"about {r['runs_needed']} runs would"),
        ]
        for r in numbers
    ]
    headers = ["number", "planned runs", "seed std σ", "expected t·σ/√n", "floor", "decidable"]
    print(tabulate(rows, headers=headers, tablefmt="github"))
    print()
    crow = [
        [
            r["id"],
            r["fewest_runs"],
            _plan_verdict(r, f"a subject has {r['fewest_runs']} planned"),
        ]
        for r in claims
    ]
    print(tabulate(crow, headers=["claim", "fewest runs of a subject", "decidable"], tablefmt="github"))
    print(
        f"\n{sum(r['decidable'] for r in numbers)} of {len(numbers)} planned numbers and "
        f"{sum(r['decidable'] for r in claims)} of {len(claims)} planned claims can be decided by these runs."
    )
    return 0


# ------------------------------------------------------------ the arguments of each command


def _data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True)
    p.add_argument("--root", default="data", help="data root (default: data)")
    p.add_argument(
        "--download", action="store_true", help="allow torchvision to download (checksums verified)"
    )
    p.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="digits: resize to this size (default 16); imagenet: crop size (default 224)",
    )
    p.add_argument("--out", required=True, help="prepared file to write (.pt)")


def _train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spec", action="append", help="resolved run config (JSON); repeat to pack seeds")
    p.add_argument("--config", help="workflow config YAML")
    p.add_argument("--experiment")
    p.add_argument("--model")
    p.add_argument("--method", default="none")
    p.add_argument("--seed", type=int, nargs="+", help="seed(s); several are trained as one pack")
    p.add_argument(
        "--data", help="prepared data file from 'normbench data' (default: load the data set directly)"
    )
    p.add_argument(
        "--out",
        action="append",
        help="run folder, one per --spec or --seed (default with --config: "
        "<results>/<name>/runs/<experiment>/<model>/<method>/seed<k>)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="retrain a finished run: first move the folder's contents aside to <folder>.old-<timestamp>/",
    )


def _tables_arguments(p: argparse.ArgumentParser) -> None:
    _add_runs_arg(p)
    p.add_argument("--out-dir", required=True)


def _figures_arguments(p: argparse.ArgumentParser) -> None:
    _add_runs_arg(p)
    p.add_argument("--out-dir", help="write <out-dir>/<experiment>/<figure>.{png,pdf} per experiment")
    p.add_argument(
        "--out-stem", help="write one figure of all the runs given, <out-stem>.{png,pdf} (a paper figure)"
    )
    p.add_argument("--title", default="", help="with --out-stem: the figure's title")
    p.add_argument("--probe", help="draw this probe's figure instead of the training curves")
    p.add_argument(
        "--figure",
        default="curves",
        help="curves (default), fig2_grid (Zaeemzadeh Fig. 2), param_efficiency (Zaeemzadeh Fig. 5) or "
        "conv1_filters (Xie Fig. 6, read from the runs' checkpoint.pt)",
    )
    p.add_argument(
        "--layout",
        help="the figure's layout as JSON (the experiment's figure: block). Curves: e.g. "
        '\'{"panels": "depth", "spread": "range"}\' (normbench.outputs.figures.LAYOUT_DEFAULTS); grad_norm_ratio: '
        '"depths" (model -> depth row); backward_profile: "iterations" (one panel per named iteration); '
        'weight_condition and hidden_condition: "datasets" (one panel per data set); conv1_filters: "depth"',
    )


def _fig2_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spec", help="resolved run config with its grid (JSON)")
    p.add_argument("--config", help="workflow config YAML")
    p.add_argument("--experiment")
    p.add_argument("--model", default="fig2_probe")
    p.add_argument("--method", default="none")
    p.add_argument("--seed", type=int)
    p.add_argument("--data", help="prepared data file from 'normbench data' (default: load the data set)")
    p.add_argument(
        "--out", help="run folder (default: <results>/<name>/runs/<experiment>/<model>/<method>/seed<k>)"
    )


def _compare_arguments(p: argparse.ArgumentParser) -> None:
    _add_runs_arg(p)
    p.add_argument("--out-dir", required=True)
    p.add_argument(
        "--references", nargs="*", help="reference YAML files (default: all shipped with normbench)"
    )
    p.add_argument("--strict", action="store_true", help="exit 1 if any non-PROXY number or claim DEVIATES")


def _paper_tables_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--comparison", required=True, help="comparison.json (or .csv) of 'normbench compare'")
    p.add_argument("--out", required=True, help="output folder, e.g. results/smoke/paper_tables")
    p.add_argument(
        "--references", nargs="*", help="reference YAML files (default: all shipped with normbench)"
    )


def _estimate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="config/paper.yaml", help="configuration (default: config/paper.yaml)")
    p.add_argument("--bench", help="JSON written by 'normbench bench --json' on the GPU to estimate for")
    p.add_argument("--engine", help="with --bench: use this engine's rows (default: the fastest per model)")
    p.add_argument(
        "--precision", default="fp32", help="with --bench: use rows of this precision (default fp32)"
    )
    p.add_argument(
        "--pack",
        type=int,
        default=1,
        help="with --bench: use rows measured with this many seeds per process (default 1; bench --pack)",
    )
    p.add_argument(
        "--throughput",
        action="append",
        default=[],
        metavar="MODEL=IMAGES_PER_S",
        help="a measured throughput (repeatable); overrides --bench for that model",
    )
    p.add_argument(
        "--reference", default="preact_resnet164", help="measured model the others are scaled from"
    )
    p.add_argument("--json", help="also write the estimate as JSON here")


def _report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", required=True, help="results folder of one configuration (results/<name>)")
    p.add_argument("--out", required=True)
    p.add_argument("--title", default="")


def _theory_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out-dir", required=True, help="folder of the figures and verdicts.json (results/<name>/theory)"
    )
    p.add_argument(
        "--scale",
        choices=["small", "paper"],
        help="sizes of the checks (default: from --name: paper for 'paper')",
    )
    p.add_argument("--name", default="smoke", help="configuration name (chooses the default scale)")
    p.add_argument(
        "--only", action="append", metavar="KEY", help="run only this check (<paper>/<theorem>), repeatable"
    )


def _bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--models",
        nargs="+",
        default=["preact_resnet164", "procresnet166:procrustes"],
        help="registry models, optionally NAME:METHOD (default: preact_resnet164 procresnet166:procrustes; "
        "add preact_resnet1001 for the 1001-layer net)",
    )
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=20, help="timed steps per engine (default 20)")
    p.add_argument(
        "--warmup", type=int, default=5, help="untimed steps first (default 5; graphs are captured there)"
    )
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    p.add_argument(
        "--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16"], help="precisions (fp32 always)"
    )
    p.add_argument("--deterministic", action="store_true", help="no cuDNN autotuning in the fast engine")
    p.add_argument(
        "--pack",
        type=int,
        nargs="+",
        default=[],
        metavar="K",
        help="also time the fast engine with K seeds packed in one process (engine.pack), e.g. --pack 2 4",
    )
    p.add_argument(
        "--repeats", type=int, default=1, help="time the engines alternately N times, keep the best"
    )
    p.add_argument("--json", help="also write the result as JSON here")
    p.add_argument("--validate-bf16", metavar="OUT", help="write the bf16-vs-fp32 validation verdict to OUT")
    p.add_argument("--config", help="--validate-bf16: workflow config YAML")
    p.add_argument("--experiment")
    p.add_argument("--model")
    p.add_argument("--method", default="none")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, help="--validate-bf16: short schedule (default: the experiment's)")
    p.add_argument(
        "--tolerance",
        type=float,
        default=1.0,
        help="max |test error difference| in pp, errors averaged over the last quarter of the epochs (1.0)",
    )
    p.add_argument("--data", help="--validate-bf16: prepared data file from 'normbench data'")
    p.add_argument("--work-dir", help="--validate-bf16: folder for the two runs (default: a temporary one)")


def _models_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="JSON list with name, params, paper_params, ...")
    p.add_argument("--family", help="only this family (cifar or imagenet)")


def _references_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="one flat JSON list")
    p.add_argument("--paper", help="only this paper key, e.g. zaeemzadeh2020")


def _plan_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="a configuration file, e.g. config/paper.yaml")
    p.add_argument("--json", action="store_true", help="the rows as JSON")


def _runs_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True)


@dataclass(frozen=True)
class Command:
    """One sub-command: its name, the function that runs it, the function that declares its arguments, and
    the ``add_parser`` texts (``help``, ``description``)."""

    name: str
    run: Callable[[argparse.Namespace], int]
    arguments: Callable[[argparse.ArgumentParser], None]
    help: str
    description: str | None = None

    def register(self, sub: argparse._SubParsersAction) -> None:
        p = sub.add_parser(self.name, help=self.help, description=self.description)
        self.arguments(p)
        p.set_defaults(func=self.run)


COMMANDS: tuple[Command, ...] = (
    Command(
        "data",
        cmd_data,
        _data_arguments,
        help="prepare a data set: uint8 tensors (digits, mnist, cifar10, cifar100) or an image-folder "
        "manifest (imagenet: <root>/imagenet/{train,val}/<class>/<image>)",
    ),
    Command(
        "train",
        cmd_train,
        _train_arguments,
        help="train one run: (experiment, model, method, seed), or several seeds of it in one process",
        description="Train one run. Either --spec (a resolved run config as JSON, as the workflow "
        "passes it) with --out, or --config with --experiment/--model/--seed. Several --spec/--out pairs "
        "(or several --seed values) train those seeds of one (experiment, model, method) in this process, "
        "their steps interleaved (engine.pack; on a GPU each on its own CUDA stream); each run computes "
        "what it computes alone. Resumes from each run folder's resume.pt if a previous attempt was "
        "interrupted. A folder that holds the finished run already is left untouched (exit 0) unless "
        "--force. Exit status: 0 done, 1 an I/O error (full disk, read-only folder, ...), 2 bad input, "
        "75 (EX_TEMPFAIL) a run folder is being written by another process (its .lock is held).",
    ),
    Command(
        "tables",
        cmd_tables,
        _tables_arguments,
        help="aggregate run logs over seeds into Markdown/CSV/LaTeX tables",
    ),
    Command(
        "figures",
        cmd_figures,
        _figures_arguments,
        help="draw training curves or a probe's figure (PNG and PDF) from run logs",
        description="Writes <out-dir>/<experiment>/<FIGURE>.{png,pdf}: the training curves (curves, laid out "
        "by --layout) or Zaeemzadeh Fig. 2's heat maps of a Fig. 2 study (fig2_grid, with its .csv); or with "
        "--probe NAME the figure of that probe's records, <out-dir>/<experiment>/<NAME>.{png,pdf}. With "
        "--out-stem instead of --out-dir, one figure of all the runs given (a paper figure spanning "
        "experiments).",
    ),
    Command(
        "fig2",
        cmd_fig2,
        _fig2_arguments,
        help="run one Zaeemzadeh Fig. 2 study run: every (c, d) cell of the experiment's grid, one method and seed",
        description="Train the 3-layer network of every (c, d) cell of a Fig. 2 study experiment (one with a "
        "grid:) with one method and seed, and write the run folder (config.json, provenance.json, "
        "metrics.jsonl with the ratio of every cell). Either --spec (as the workflow passes it) or --config "
        "with --experiment/--method/--seed.",
    ),
    Command(
        "compare",
        cmd_compare,
        _compare_arguments,
        help="compare run logs with the papers' numbers and claims; write comparison.* and claims.*",
        description="Compare our runs with every paper reference number and evaluate every qualitative "
        "claim, with verdicts (comparison.csv/md/json, claims.csv/md/json). "
        "--strict exits 1 when a non-PROXY number or claim DEVIATES.",
    ),
    Command(
        "paper-tables",
        cmd_paper_tables,
        _paper_tables_arguments,
        help="lay out comparison.json as the papers' own tables, and the same baseline across papers",
        description="Read the rows 'normbench compare' wrote (comparison.json or .csv) and write, for every "
        "reference table (run or not), <out>/<paper>/<table>.{md,csv,tex}: the paper's rows and columns, "
        "each cell 'ours (paper X) verdict' (CSV: one line per cell). Also <out>/baselines.{md,csv,tex}: "
        "a configuration (model, method, options, optimizer, data set, metric) that two or more papers "
        "report, their numbers side by side with ours.",
    ),
    Command(
        "estimate",
        cmd_estimate,
        _estimate_arguments,
        help="GPU-hours of a configuration, per experiment and per paper table, from measured throughputs",
        description="Estimate the training GPU-hours of every experiment of a configuration and of every "
        "paper table, as training images x epochs x runs / images per second. A model's images/s is "
        "measured (--bench, --throughput) or scaled from a measured reference model by forward FLOPs "
        "(rough: small networks are launch-bound). Without measurements, the reference is pre-act "
        "ResNet-164 at 2253 images/s (one H100, eager fp32/TF32, measured outside this suite). See normbench/studies/estimate.py.",
    ),
    Command(
        "report",
        cmd_report,
        _report_arguments,
        help="write the HTML report of a results folder",
    ),
    Command(
        "theory",
        cmd_theory,
        _theory_arguments,
        help="check the papers' theorems numerically: measured quantity against the predicted bound or rate",
        description="For each theorem or lemma of the papers with a measurable prediction (normbench/studies/"
        "theory.py), build the networks or matrices it is about, measure the quantity over the range it "
        "speaks of, and write <out-dir>/<paper>/<theorem>.{png,pdf,json} and <out-dir>/verdicts.json, "
        "judged with the claims' rules (normbench/verdicts/theory.py). --scale paper spans the statements' "
        "full ranges (e.g. depth 4 to 1000); small runs in seconds. See docs/theory.md.",
    ),
    Command(
        "bench",
        cmd_bench,
        _bench_arguments,
        help="time the eager training loop against the fast engine on this device (images/s, s per epoch)",
        description="Train each model with the eager loop and with the fast engine (normbench.training.engine) on "
        "synthetic uint8 data of CIFAR shape held on the device, and print images/s, seconds per CIFAR epoch "
        "(50,000 images) and the ratio to eager fp32, as a table and (--json) JSON; --pack adds the fast engine "
        "with several seeds trained in one process. With --validate-bf16 OUT, "
        "instead train one configured run in fp32 and in bf16 on a short schedule and write the verdict that "
        "gates bf16 runs (engine.bf16_validation); exit 1 if it fails.",
    ),
    Command(
        "models",
        cmd_models,
        _models_arguments,
        help="list the model registry with parameter counts (ours vs paper)",
    ),
    Command(
        "references",
        cmd_references,
        _references_arguments,
        help="list the papers' reference numbers",
    ),
    Command(
        "plan",
        cmd_plan,
        _plan_arguments,
        help="for each paper number and claim a configuration plans: can its runs decide it?",
        description="Lists every trained paper number and claim the configuration plans, with its planned "
        "runs, the seed-to-seed std assumed (the paper's where it states one, else half the metric's floor), "
        "the expected half-width of the 95%% Student-t interval and whether that fits inside the floor. "
        "A single run can never decide (no spread). See normbench/verdicts/plan.py.",
    ),
    Command(
        "runs",
        cmd_runs,
        _runs_arguments,
        help="list the runs a configuration plans",
    ),
)
"""Every sub-command, in the order ``normbench --help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="normbench",
        description="Reproducibility benchmark for norm-preserving very deep networks: train the papers' "
        "models, regenerate their tables and figures, and compare every number with the paper.",
        epilog=EPILOG,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    for c in COMMANDS:
        c.register(sub)
    return parser


# Errors reported as "normbench CMD: error: ..." with exit status 2, as (module, class) pairs. They are looked
# up in sys.modules when one is raised, never imported here: importing normbench.training.data or normbench.models
# imports torch, which ``normbench --help`` and the torch-free commands must not pay for (an error of a
# module that was never imported cannot have been raised).
USER_ERRORS = (
    ("normbench.config", "ConfigError"),
    ("normbench.training.data", "DataError"),
    ("normbench.models.registry", "UnknownModelError"),
)


def _user_errors() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [FileNotFoundError, ValueError]
    for module, name in USER_ERRORS:
        if module in sys.modules:
            found.append(getattr(sys.modules[module], name))
    return tuple(found)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Exception as err:
        if not isinstance(err, _user_errors()):
            raise
        print(f"normbench {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
