"""Paper numbers as data: one YAML file per paper in this folder, validated by
``normbench/schemas/references.schema.yaml`` (format and vocabularies: ``docs/references.md``).

Each entry is one number of a paper's table, figure or text, with its table id, row, column, our metric
name, units, the paper's statistic over runs, the number of runs and the protocol it was measured under
(inherited from the file's ``protocols`` section). :func:`load_references` returns them flat.

Each protocol may carry a ``recipe``: the training recipe as the paper's text states it (:data:`RECIPE_KEYS`,
each ``None`` where the paper is silent). Entries and claims inherit it as ``recipe``, a plain dict, with any
per-data-set value (``{cifar10: 64, cifar100: 128}``) resolved for the entry's (the claim's protocol's) data
set; an empty dict where the protocol has no recipe. A claim that pools data sets holds each subject to the
recipe of its own data set (:meth:`Claim.recipe_for`).

Each claim is a qualitative statement of a paper with a named check from a fixed vocabulary and the
arguments that check needs (models, methods, metric, thresholds). :func:`load_claims` returns them flat.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from normbench.verdicts.metrics import UnknownMetricError, metric_info

CHECKS = (
    "diverges_within_epochs",
    "does_not_learn",
    "learns",
    "less_than",
    "order_less_than",
    "approximately_equal",
    "best_among",
    "ratio_concentrated_near_one",
    "closer_to_one",
    "monotone_with_depth",
    "all_finite",
    "all_positive",
    "gain_shrinks",
)
"""The claim-check vocabulary (semantics: ``docs/references.md``)."""

RECIPE_KEYS = (
    "batch_size",
    "optimizer",
    "lr",
    "momentum",
    "nesterov",
    "weight_decay",
    "init",
    "preprocess",
    "augment",
)
"""The keys of a protocol's ``recipe`` (meaning and vocabularies: ``docs/references.md``)."""


class ReferenceError(ValueError):
    """A reference file is invalid; the message names the file and the entry."""


@dataclass(frozen=True)
class Reference:
    paper: str
    table: str
    label: str
    row: str
    column: str
    metric: str
    units: str
    statistic: str
    value: float | None
    dataset: str
    runs: int | None
    epochs: int | None
    protocol: str
    model: str | None = None
    method: str = "none"
    note: str = ""
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    optimizer: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    missing: str | None = None
    qualifier: str = "exact"
    baseline: dict[str, Any] | None = None
    quote: str = ""
    config_only: bool = False
    recipe: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.paper}/{self.table}/{self.row}/{self.column}"

    @property
    def table_key(self) -> str:
        """``<paper>/<table>``, the form experiments name in ``reproduces``."""
        return f"{self.paper}/{self.table}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["id"] = self.id
        return d


@dataclass(frozen=True)
class Claim:
    """A qualitative claim: ``check`` (from :data:`CHECKS`) applied with ``args`` to our runs of ``table``."""

    paper: str
    id: str
    table: str
    label: str
    section: str
    statement: str
    check: str
    args: dict[str, Any]
    dataset: str
    runs: int | None
    epochs: int | None
    protocol: str
    note: str = ""
    source: str = ""
    config_only: bool = False
    recipe: dict[str, Any] = field(default_factory=dict)
    recipe_block: dict[str, Any] = field(default_factory=dict)
    """The protocol's recipe unresolved: per-data-set values stay mappings (:meth:`recipe_for`)."""

    def recipe_for(self, dataset: str) -> dict[str, Any]:
        """The recipe a subject on ``dataset`` is held to (a claim may pool data sets of one table)."""
        return resolve_recipe(self.recipe_block, dataset)

    @property
    def key(self) -> str:
        """``<paper>/<claim id>``, unique over all files."""
        return f"{self.paper}/{self.id}"

    @property
    def table_key(self) -> str:
        """``<paper>/<table>``, the form experiments name in ``reproduces``."""
        return f"{self.paper}/{self.table}"

    def subjects(self) -> list[dict[str, Any]]:
        """Every (model, method, ...) configuration the check reads, in order, without repeats."""
        found: list[dict[str, Any]] = []

        def walk(x: Any) -> None:
            if isinstance(x, dict) and "model" in x:
                if x not in found:
                    found.append(x)
            elif isinstance(x, dict):
                for v in x.values():
                    walk(v)
            elif isinstance(x, list):
                for v in x:
                    walk(v)

        walk(self.args)
        return found

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["key"] = self.key
        return d


def _schema() -> dict:
    return yaml.safe_load(resources.files("normbench").joinpath("schemas/references.schema.yaml").read_text())


def reference_files() -> list[Path]:
    folder = resources.files("normbench").joinpath("references")
    return sorted(Path(str(p)) for p in folder.iterdir() if str(p).endswith(".yaml"))


def _load_document(path: str | Path) -> dict:
    """Read and validate one paper's file (schema, file name, table keys); return the raw document."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ReferenceError(f"{path}: cannot read ({err})") from err
    errors = sorted(
        jsonschema.Draft7Validator(_schema()).iter_errors(doc), key=lambda e: list(e.absolute_path)
    )
    if errors:
        msgs = [f"{'.'.join(map(str, e.absolute_path)) or '<top>'}: {e.message}" for e in errors[:10]]
        raise ReferenceError(f"{path}: invalid reference file:\n  " + "\n  ".join(msgs))
    if path.stem != doc["paper"]:
        raise ReferenceError(f"{path}: file name must be the paper key {doc['paper']!r}.yaml")
    return doc


def _protocol(path: Path, doc: dict, where: str, table: str) -> dict:
    proto = doc["protocols"].get(table)
    if proto is None:
        raise ReferenceError(f"{path}: {where}: table {table!r} has no entry under protocols")
    return proto


def _recipe(proto: dict, dataset: str) -> dict[str, Any]:
    """The protocol's recipe with per-data-set values (mappings) resolved for ``dataset``; {} if none."""
    recipe = proto.get("recipe") or {}
    return {k: (v.get(dataset) if isinstance(v, dict) else v) for k, v in recipe.items()}


def parse_reference_file(path: str | Path) -> list[Reference]:
    """Validate one paper's file and return its entries with their protocol filled in."""
    path = Path(path)
    doc = _load_document(path)
    out, seen = [], set()
    for i, e in enumerate(doc["entries"]):
        proto = _protocol(path, doc, f"entries.{i}", e["table"])
        try:
            metric_info(e["metric"])
        except UnknownMetricError as err:
            raise ReferenceError(f"{path}: entries.{i}: {err}") from None
        dataset = e.get("dataset", proto["dataset"])
        ref = Reference(
            paper=doc["paper"],
            table=e["table"],
            label=proto["label"],
            row=e["row"],
            column=e["column"],
            metric=e["metric"],
            units=e["units"],
            statistic=e["statistic"],
            value=e["value"],
            dataset=dataset,
            runs=e.get("runs", proto.get("runs")),
            epochs=proto.get("epochs"),
            protocol=proto["description"].strip(),
            model=e.get("model"),
            method=e.get("method", "none"),
            note=e.get("note", ""),
            source=e.get("source", doc["source"]),
            optimizer=e.get("optimizer"),
            options=e.get("options", {}),
            missing=e.get("missing"),
            qualifier=e.get("qualifier", "exact"),
            baseline=e.get("baseline"),
            quote=e.get("quote", ""),
            config_only=proto.get("config_only", False),
            recipe=_recipe(proto, dataset),
        )
        if ref.id in seen:
            raise ReferenceError(f"{path}: entries.{i}: duplicate entry {ref.id}")
        seen.add(ref.id)
        out.append(ref)
    return out


def parse_claims_file(path: str | Path) -> list[Claim]:
    """Validate one paper's file and return its claims (possibly none) with their protocol filled in."""
    path = Path(path)
    doc = _load_document(path)
    out, seen = [], set()
    for i, c in enumerate(doc.get("claims", [])):
        proto = _protocol(path, doc, f"claims.{i}", c["table"])
        if c["id"] in seen:
            raise ReferenceError(f"{path}: claims.{i}: duplicate claim id {c['id']!r}")
        seen.add(c["id"])
        out.append(
            Claim(
                paper=doc["paper"],
                id=c["id"],
                table=c["table"],
                label=proto["label"],
                section=c["section"],
                statement=" ".join(c["statement"].split()),
                check=c["check"],
                args=c["args"],
                dataset=proto["dataset"],
                runs=proto.get("runs"),
                epochs=proto.get("epochs"),
                protocol=proto["description"].strip(),
                note=" ".join(c.get("note", "").split()),
                source=doc["source"],
                config_only=proto.get("config_only", False),
                recipe=_recipe(proto, proto["dataset"]),
                recipe_block=dict(proto.get("recipe") or {}),
            )
        )
    return out


def load_references(paths: list[str | Path] | None = None) -> list[Reference]:
    """Every entry of every paper file (or of ``paths``), in file order."""
    return [ref for p in (paths or reference_files()) for ref in parse_reference_file(p)]


def load_claims(paths: list[str | Path] | None = None) -> list[Claim]:
    """Every claim of every paper file (or of ``paths``), in file order."""
    return [claim for p in (paths or reference_files()) for claim in parse_claims_file(p)]


def load_recipes(paths: list[str | Path] | None = None) -> dict[str, dict[str, Any]]:
    """``{<paper>/<table>: recipe block}`` of every protocol with a recipe (per-data-set values unresolved;
    :func:`resolve_recipe`). What the config check holds each experiment to, figures without numbers too."""
    out = {}
    for p in paths or reference_files():
        doc = _load_document(p)
        for table, proto in doc["protocols"].items():
            if proto.get("recipe"):
                out[f"{doc['paper']}/{table}"] = dict(proto["recipe"])
    return out


def resolve_recipe(recipe: dict[str, Any], dataset: str) -> dict[str, Any]:
    """``recipe`` with its per-data-set values (mappings) resolved for ``dataset``."""
    return _recipe({"recipe": recipe}, dataset)
