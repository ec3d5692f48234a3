"""Configuration: validated against ``workflow/schemas/config.schema.yaml``, defaults filled, then frozen
into one resolved dictionary per run.

Precedence: the schema's defaults < the YAML file < command-line overrides. Validation fails before any job
starts and names the offending key (``experiments.gap.epochs: 'x' is not of type 'integer'``); an unknown
model or method name lists the valid ones.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from normbench.runs.folder import STREAMED_DATASETS


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key and what was expected."""


def load_schema() -> dict:
    text = resources.files("normbench").joinpath("schemas/config.schema.yaml").read_text()
    return yaml.safe_load(text)


def _key_path(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def fill_defaults(instance: Any, schema: dict, root: dict) -> Any:
    """Return ``instance`` with every ``default`` of ``schema`` filled in, recursively."""
    if "$ref" in schema:
        name = schema["$ref"].split("/")[-1]
        schema = root["definitions"][name]
    if not isinstance(instance, dict):
        return instance
    out = dict(instance)
    for key, sub in schema.get("properties", {}).items():
        if key not in out and "default" in sub:
            out[key] = copy.deepcopy(sub["default"])
        if key in out:
            out[key] = fill_defaults(out[key], sub, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key in out:
            if key not in schema.get("properties", {}):
                out[key] = fill_defaults(out[key], extra, root)
    return out


def strip_anchor_blocks(config: dict) -> dict:
    """Drop top-level ``x-*`` keys: blocks that only hold YAML anchors (shared recipes), not configuration."""
    return {k: v for k, v in config.items() if not str(k).startswith("x-")}


def validate_config(config: dict) -> dict:
    """Validate ``config`` against the schema, fill defaults, check model and method names; return a copy."""
    config = strip_anchor_blocks(config)
    schema = load_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{_key_path(e.absolute_path)}: {e.message}" for e in errors]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))
    config = fill_defaults(config, schema, schema)
    if "proxy" in config:
        config = apply_proxy(config)
    check_names(config)
    return config


def apply_proxy(config: dict) -> dict:
    """Replace ``config``'s experiments by those of ``proxy.from`` at proxy scale (see the schema's ``proxy``).

    Each derived experiment keeps its name, models, methods, options, optimizer, schedule type and the paper
    tables it reproduces; it runs on ``proxy.dataset`` (standing for the experiment's own data set, recorded as
    ``paper_dataset``), for ``proxy.epochs`` epochs, with the first ``proxy.seeds`` seeds, and builds
    ``proxy.architectures[model]`` in place of each model. Step milestones beyond the shortened run are dropped,
    and so are image-folder crops (``augment.crop``, ``augment.lighting``) on an in-memory proxy data set (the
    protocol check names the difference).
    """
    proxy = config["proxy"]
    base = load_config(proxy["from"])
    derived = {}
    for name, exp in base["experiments"].items():
        exp = copy.deepcopy(exp)
        exp["paper_dataset"] = exp["paper_dataset"] or exp["dataset"]
        exp["dataset"] = proxy["dataset"]
        exp["image_size"] = proxy["image_size"] if proxy["dataset"] == "digits" else None
        exp["epochs"] = proxy["epochs"]
        exp["seeds"] = exp["seeds"][: proxy["seeds"]]
        exp["batch_size"] = proxy["batch_size"]
        if proxy["dataset"] not in STREAMED_DATASETS:  # image-folder crops have no in-memory counterpart
            exp["augment"] = {k: v for k, v in exp["augment"].items() if k not in ("crop", "lighting")}
        exp["schedule"]["milestones"] = [m for m in exp["schedule"]["milestones"] if m < proxy["epochs"]]
        exp["probes"]["every"] = 1
        exp["probes"]["batch"] = min(exp["probes"]["batch"], proxy["probe_batch"])
        exp["architectures"] = {m: proxy["architectures"].get(m, m) for m in exp["models"]}
        if exp["grid"] and proxy["grid"]:
            exp["grid"] = copy.deepcopy(proxy["grid"])
        exp["description"] = f"PROXY of {proxy['from']}: {exp['description']}".strip()
        derived[name] = exp
    out = dict(config)
    out["experiments"] = {**derived, **config.get("experiments", {})}
    out["paper_figures"] = config["paper_figures"] or copy.deepcopy(base["paper_figures"])
    return out


def check_names(config: dict) -> None:
    """Every model and method an experiment names must be registered; streamed data sets take no padding and
    no per-pixel preprocessing;
    a paper figure must be reproduced by some experiment and be of a kind that can be drawn."""
    from normbench.methods import UnknownMethodError, method_names
    from normbench.models import UnknownModelError, get_model_info
    from normbench.probes.record import PROBES
    from normbench.training.data import get_spec

    reproduced = {key for exp in config["experiments"].values() for key in exp["reproduces"]}
    for key, fig in config["paper_figures"].items():
        if key not in reproduced:
            raise ConfigError(f"paper_figures.{key}: no experiment reproduces it (its `reproduces` lists)")
        if fig["kind"] != "curves" and fig["kind"] not in PROBES:
            raise ConfigError(
                f"paper_figures.{key}.kind: {fig['kind']!r}; valid: curves, {', '.join(sorted(PROBES))}"
            )

    for exp_name, exp in config["experiments"].items():
        if get_spec(exp["dataset"]).streamed and exp["preprocess"] == "per_pixel":
            raise ConfigError(
                f"experiments.{exp_name}.preprocess: per_pixel needs the training set's statistics per pixel, "
                f"which {exp['dataset']} (streamed, random-resized crops) does not have; use per_channel or none"
            )
        if get_spec(exp["dataset"]).streamed and exp["augment"]["pad"]:
            raise ConfigError(
                f"experiments.{exp_name}.augment.pad: {exp['dataset']} uses random-resized crops, not "
                "padding; set augment.pad: 0"
            )
        folder_only = {k: exp["augment"][k] for k in ("crop", "lighting") if k in exp["augment"]}
        if not get_spec(exp["dataset"]).streamed and (
            folder_only.get("crop", "random_resized") != "random_resized" or folder_only.get("lighting", 0)
        ):
            raise ConfigError(
                f"experiments.{exp_name}.augment: crop and lighting are for image folders (imagenet); "
                f"{exp['dataset']} uses pad and flip"
            )
        for model in [*exp["models"], *exp["architectures"].values()]:
            try:
                get_model_info(model)
            except UnknownModelError as err:
                raise ConfigError(f"experiments.{exp_name}.models: {err}") from None
        for method in exp["methods"]:
            try:
                method_names(method)
            except UnknownMethodError as err:
                raise ConfigError(f"experiments.{exp_name}.methods: {err}") from None


def load_config(path: str | Path, overrides: dict | None = None) -> dict:
    """Read a YAML configuration file, apply ``overrides`` (a nested dict), validate it."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read configuration {path}: {err}") from err
    if not isinstance(config, dict):
        raise ConfigError(f"configuration {path} must be a mapping at the top level")
    config = deep_merge(config, overrides or {})
    try:
        return validate_config(config)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = (
            deep_merge(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else value
        )
    return out


@dataclass(frozen=True)
class RunSpec:
    """One training job: an (experiment, model, method, seed) of a configuration."""

    experiment: str
    model: str
    method: str
    seed: int

    @property
    def path(self) -> str:
        """Run folder relative to ``<results>/<name>/runs``."""
        return f"{self.experiment}/{self.model}/{self.method}/seed{self.seed}"


def results_dir(config: dict) -> Path:
    return Path(config["results"]) / config["name"]


def run_specs(config: dict, experiment: str | None = None) -> list[RunSpec]:
    """Every run of the configuration (or of one experiment), in config order."""
    exps = config["experiments"]
    names = [experiment] if experiment else list(exps)
    return [
        RunSpec(name, model, method, seed)
        for name in names
        for model in exps[name]["models"]
        for method in exps[name]["methods"]
        for seed in exps[name]["seeds"]
    ]


def run_config(config: dict, spec: RunSpec) -> dict:
    """The frozen, self-contained configuration of one run: everything the trainer reads, nothing else."""
    exp = config["experiments"].get(spec.experiment)
    if exp is None:
        raise ConfigError(
            f"unknown experiment {spec.experiment!r}; valid: {', '.join(config['experiments'])}"
        )
    for key, value in (("models", spec.model), ("methods", spec.method), ("seeds", spec.seed)):
        if value not in exp[key]:
            raise ConfigError(f"experiments.{spec.experiment}.{key} has no {value!r}; it lists {exp[key]}")
    method_parts = spec.method.split("+")
    return {
        "config_name": config["name"],
        "experiment": spec.experiment,
        "reproduces": list(exp["reproduces"]),
        "model": spec.model,
        "arch": exp["architectures"].get(spec.model, spec.model),
        "method": spec.method,
        "method_options": {k: v for k, v in exp["method_options"].items() if k in method_parts},
        "seed": spec.seed,
        "seeds": list(exp["seeds"]),
        "dataset": exp["dataset"],
        "paper_dataset": exp["paper_dataset"] or exp["dataset"],
        "image_size": exp["image_size"],
        "data_root": config["data"]["root"],
        "workers": config["data"]["workers"],
        "epochs": exp["epochs"],
        "batch_size": exp["batch_size"],
        "optimizer": dict(exp["optimizer"]),
        "schedule": dict(exp["schedule"]),
        "augment": dict(exp["augment"]),
        "init": exp["init"],
        "preprocess": exp["preprocess"],
        "probes": dict(exp["probes"]),
        "device": config["device"],
        "threads": config["threads"],
        "deterministic": config["deterministic"],
        # engine.pack changes how runs share a process, not what they compute: not part of a run's config
        "engine": {k: v for k, v in config["engine"].items() if k != "pack"},
    }
