# Helpers that map the (validated) config to targets. All model/method/data knowledge lives in normbench.
import json
import math
import re
import os
import shlex
import sys

from normbench.outputs.layouts import RECORD_FIGURES
from normbench.probes.record import PROBES
from normbench.training.data import get_spec
from normbench.config import RunSpec, results_dir, run_config, run_specs

# CONFIG: the validated config, from the Snakefile (which reports an invalid one in a few lines and exits)

RES = str(results_dir(CONFIG))
EXPERIMENTS = list(CONFIG["experiments"])


wildcard_constraints:
    experiment=r"[A-Za-z0-9_-]+",
    model=r"[A-Za-z0-9_]+",
    method=r"[A-Za-z0-9_+]+",
    seed=r"\d+",
    data_id=r"[A-Za-z0-9_]+",
    probe="|".join([*PROBES, *RECORD_FIGURES]),


def data_id(exp: dict) -> str:
    """Prepared-data key of an experiment: the data set, plus the image size where one is set."""
    return exp["dataset"] if exp["image_size"] is None else f"{exp['dataset']}_{exp['image_size']}"


DATA = {data_id(e): (e["dataset"], e["image_size"]) for e in CONFIG["experiments"].values()}
DATA_PATTERN = f"{RES}/data/{{data_id}}.pt"  # the prepared data set (rule data), one per DATA key

# Raw data each data set needs under data.root (digits is built in). Checked at parse time, on the file
# system only, where its prepared file is not there yet: a run with a missing data set stops here with its fix
# rather than minutes later inside the data job; a dry run (planning before the data is there) warns.
RAW_DATA = {"mnist": "MNIST/raw", "cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python", "imagenet": "imagenet/train"}


def missing_data() -> list[str]:
    root, download = CONFIG["data"]["root"], CONFIG["data"]["download"]
    missing = []
    for key, (name, _) in sorted(DATA.items()):
        expected = os.path.join(root, RAW_DATA[name]) if name in RAW_DATA else None
        if expected is None or os.path.exists(DATA_PATTERN.format(data_id=key)) or os.path.isdir(expected):
            continue
        if name == "imagenet":
            missing.append(f"{name}: no folder {expected} (nor its val/); it needs a licence: put it there")
        elif not download:
            missing.append(f"{name}: no {expected}; set data.download: true to fetch it, or point data.root at a copy")
    return missing


# Commands that plan and run nothing: missing data is a warning for them, not an error. Snakemake parses the
# Snakefile before it knows the command, so beyond the dry-run flag (set before parsing; workflow.dryrun is not)
# this reads the command line.
PLANNING_OPTIONS = ("--summary", "--detailed-summary", "--list", "--list-rules", "--list-target-rules", "--dag",
                    "--rulegraph", "--filegraph", "--d3dag", "--lint", "--list-changes")


def planning_only() -> bool:
    if getattr(workflow.output_settings, "dryrun", False):
        return True
    args = sys.argv[1:]
    return any(a.split("=")[0] in PLANNING_OPTIONS or a in ("-S", "-D", "-l", "--lt") for a in args)


if workflow.is_main_process and missing_data():
    _dry = planning_only()
    print(
        f"{'warning: ' if _dry else ''}{', '.join(CONFIG_FILES)}: data not found under data.root "
        f"{CONFIG['data']['root']!r}:\n  " + "\n  ".join(missing_data()),
        file=sys.stderr,
    )
    if not _dry:
        sys.exit(1)


def run_dir(spec: RunSpec) -> str:
    return f"{RES}/runs/{spec.path}"


def metrics_files(experiment: str | None = None) -> list[str]:
    return [f"{run_dir(s)}/metrics.jsonl" for s in run_specs(CONFIG, experiment)]


def run_spec_json(wildcards) -> str:
    spec = RunSpec(wildcards.experiment, wildcards.model, wildcards.method, int(wildcards.seed))
    return json.dumps(run_config(CONFIG, spec), sort_keys=True)


def pack_size(name: str) -> int:
    """Seeds per training job of an experiment: its `pack`, else engine.pack; Fig. 2 studies are not packed."""
    exp = CONFIG["experiments"][name]
    return 1 if exp["grid"] else exp["pack"] or CONFIG["engine"]["pack"]


def seed_packs() -> dict[tuple[int, ...], list[str]]:
    """Packed experiments' seeds cut into groups of their pack size, in config order (the last group may be
    smaller) -> the experiments cut into that group."""
    packs = {}
    for name, exp in CONFIG["experiments"].items():
        size = pack_size(name)
        for i in range(0, len(exp["seeds"]), size) if size > 1 else ():
            packs.setdefault(tuple(exp["seeds"][i : i + size]), []).append(name)
    return packs


def experiment_regex(names) -> str:
    """A wildcard constraint matching exactly these experiments (none: matching nothing)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


def pack_arguments(wildcards, seeds) -> str:
    """``--spec <config> --out <folder>`` for each seed of a pack (shell-quoted)."""
    args = []
    for seed in seeds:
        spec = RunSpec(wildcards.experiment, wildcards.model, wildcards.method, seed)
        args += ["--spec", json.dumps(run_config(CONFIG, spec), sort_keys=True), "--out", run_dir(spec)]
    return shlex.join(args)


# Zaeemzadeh Fig. 2 studies (experiments with a grid): their runs and figure come from fig2.smk
GRID_EXPERIMENTS = [name for name, exp in CONFIG["experiments"].items() if exp["grid"]]


def fig2_spec_json(wildcards) -> str:
    """The resolved config of one Fig. 2 study run: the run config plus the experiment's grid."""
    from normbench.studies.fig2 import grid_run_config

    spec = RunSpec(wildcards.experiment, wildcards.model, wildcards.method, int(wildcards.seed))
    return json.dumps(grid_run_config(CONFIG, spec), sort_keys=True)


def record_figures(exp: dict) -> list[str]:
    """The record figures (e.g. `procrustes_state`) of an experiment that trains runs of their method."""
    parts = {part for method in exp["methods"] for part in method.split("+")}
    return [] if exp["grid"] else [fig for fig, method in RECORD_FIGURES.items() if method in parts]


def figure_files() -> list[str]:
    """Training curves of every experiment (a Fig. 2 study: its heat maps), a figure per probe it records and
    per record figure of its methods (the Procrustes state)."""
    return [
        f"{RES}/figures/{name}/{fig}.png"
        for name, exp in CONFIG["experiments"].items()
        for fig in ["fig2_grid" if exp["grid"] else "curves", *exp["probes"]["names"], *record_figures(exp)]
    ]


# Paper figures spanning experiments (config `paper_figures`): '<paper>/<figure>' -> its experiments.
PAPER_FIGURES = {
    key: [name for name, exp in CONFIG["experiments"].items() if key in exp["reproduces"]]
    for key in CONFIG["paper_figures"]
}


PAPER_FIGURE_PAPERS = "|".join(sorted({os.path.dirname(key) for key in PAPER_FIGURES})) or "(?!)"


def paper_figure_args(wildcards) -> str:
    """What `normbench figures` draws for a paper figure: a probe's figure, or curves with their layout."""
    fig = CONFIG["paper_figures"][f"{wildcards.paper}/{wildcards.figure}"]
    layout = f"--layout {shlex.quote(json.dumps(fig['layout'], sort_keys=True))}"
    return layout if fig["kind"] == "curves" else f"--probe {fig['kind']} {layout}"


def paper_figure_files() -> list[str]:
    return [f"{RES}/figures/{key}.png" for key in PAPER_FIGURES]


def paper_figure_inputs(wildcards) -> list[str]:
    return [f for exp in PAPER_FIGURES[f"{wildcards.paper}/{wildcards.figure}"] for f in metrics_files(exp)]


def experiment_data(wildcards) -> str:
    return DATA_PATTERN.format(data_id=data_id(CONFIG["experiments"][wildcards.experiment]))


# Software and resources of the jobs (README: containers, SLURM, workstation with several GPUs).
# The job rules run in CONTAINER when Snakemake is called with --use-singularity (--sdm apptainer).
CONTAINER = CONFIG["container"]


def train_resources(experiment: str) -> dict:
    """A training job's resources: the config's top-level `resources`, overridden by the experiment's."""
    return {**CONFIG["resources"], **CONFIG["experiments"][experiment]["resources"]}


def train_threads(wildcards) -> int:
    """The trainer's threads, plus the DataLoader workers of a streamed data set (ImageNet)."""
    exp = CONFIG["experiments"][wildcards.experiment]
    workers = CONFIG["data"]["workers"] if get_spec(exp["dataset"]).streamed else 0
    return max(1, CONFIG["threads"]) + workers


def train_gpus(wildcards) -> int:
    return train_resources(wildcards.experiment)["gpus"]


def train_mem_mb(wildcards, attempt) -> int:
    return train_resources(wildcards.experiment)["mem_mb"] * attempt


def train_runtime(wildcards, attempt) -> int:
    """Runtime limit in minutes: scaled to the experiment's epochs, and longer on each retry."""
    res = train_resources(wildcards.experiment)
    epochs = CONFIG["experiments"][wildcards.experiment]["epochs"]
    return math.ceil((res["setup_minutes"] + epochs * res["minutes_per_epoch"]) * attempt)


# A failed job's reason on the console: Snakemake names the job's log file; print its last lines too.
FAILED_LOG_LINES = 15


def failed_job_logs(main_logs) -> list[str]:
    """The log files of the jobs that failed, read from Snakemake's own log(s) of this invocation."""
    found = []
    for main_log in [main_logs] if isinstance(main_logs, str) else list(main_logs):
        try:
            text = open(main_log, encoding="utf-8", errors="replace").read()
        except OSError:
            continue
        found += re.findall(r"^\s*log: (.+?) \(check log file\(s\) for error details\)", text, re.M)
    return list(dict.fromkeys(found))


def print_failed_logs(main_logs) -> None:
    """After a failed invocation (``onerror``): the last lines of each failed job's log, on stderr."""
    for path in failed_job_logs(main_logs):
        for one in path.split(", "):
            try:
                lines = open(one, encoding="utf-8", errors="replace").read().splitlines()
            except OSError:
                continue
            print(f"--- last {min(len(lines), FAILED_LOG_LINES)} lines of {one} ---", file=sys.stderr)
            print("\n".join(lines[-FAILED_LOG_LINES:]), file=sys.stderr)
