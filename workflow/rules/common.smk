# Helpers that map the (validated) config to targets. All model/method/data knowledge lives in normbench.
import json

from normbench.config import ConfigError, RunSpec, results_dir, run_config, run_specs, validate_config

try:
    CONFIG = validate_config(config)
except ConfigError as err:
    raise WorkflowError(str(err)) from None

RES = str(results_dir(CONFIG))
EXPERIMENTS = list(CONFIG["experiments"])


wildcard_constraints:
    experiment=r"[A-Za-z0-9_-]+",
    model=r"[A-Za-z0-9_]+",
    method=r"[A-Za-z0-9_+]+",
    seed=r"\d+",
    data_id=r"[A-Za-z0-9_]+",


def data_id(exp: dict) -> str:
    """Prepared-data key of an experiment: the data set, plus the image size where one is set."""
    return exp["dataset"] if exp["image_size"] is None else f"{exp['dataset']}_{exp['image_size']}"


DATA = {data_id(e): (e["dataset"], e["image_size"]) for e in CONFIG["experiments"].values()}


def run_dir(spec: RunSpec) -> str:
    return f"{RES}/runs/{spec.path}"


def metrics_files(experiment: str | None = None) -> list[str]:
    return [f"{run_dir(s)}/metrics.jsonl" for s in run_specs(CONFIG, experiment)]


def run_spec_json(wildcards) -> str:
    spec = RunSpec(wildcards.experiment, wildcards.model, wildcards.method, int(wildcards.seed))
    return json.dumps(run_config(CONFIG, spec), sort_keys=True)


def experiment_data(wildcards) -> str:
    return f"{RES}/data/{data_id(CONFIG['experiments'][wildcards.experiment])}.pt"
