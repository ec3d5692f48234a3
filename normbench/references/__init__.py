"""Paper numbers as data: one YAML file per paper in this folder, validated by
``normbench/schemas/references.schema.yaml``.

Each entry is one number of a paper's table, figure or text, with its table id, row, column, our metric
name, units, the paper's statistic over runs, the number of runs and the protocol it was measured under
(inherited from the file's ``protocols`` section). :func:`load_references` returns them flat.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml


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


def _schema() -> dict:
    return yaml.safe_load(resources.files("normbench").joinpath("schemas/references.schema.yaml").read_text())


def reference_files() -> list[Path]:
    folder = resources.files("normbench").joinpath("references")
    return sorted(Path(str(p)) for p in folder.iterdir() if str(p).endswith(".yaml"))


def parse_reference_file(path: str | Path) -> list[Reference]:
    """Validate one paper's file and return its entries with their protocol filled in."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ReferenceError(f"{path}: cannot read ({err})") from err
    errors = list(jsonschema.Draft7Validator(_schema()).iter_errors(doc))
    if errors:
        msgs = [f"{'.'.join(map(str, e.absolute_path)) or '<top>'}: {e.message}" for e in errors[:10]]
        raise ReferenceError(f"{path}: invalid reference file:\n  " + "\n  ".join(msgs))
    if path.stem != doc["paper"]:
        raise ReferenceError(f"{path}: file name must be the paper key {doc['paper']!r}.yaml")
    out, seen = [], set()
    for i, e in enumerate(doc["entries"]):
        proto = doc["protocols"].get(e["table"])
        if proto is None:
            raise ReferenceError(f"{path}: entries.{i}: table {e['table']!r} has no entry under protocols")
        ref = Reference(
            paper=doc["paper"], table=e["table"], label=proto["label"], row=e["row"], column=e["column"],
            metric=e["metric"], units=e["units"], statistic=e["statistic"], value=e["value"],
            dataset=e.get("dataset", proto["dataset"]), runs=e.get("runs", proto.get("runs")),
            epochs=proto.get("epochs"), protocol=proto["description"].strip(), model=e.get("model"),
            method=e.get("method", "none"), note=e.get("note", ""), source=doc["source"],
        )
        if ref.id in seen:
            raise ReferenceError(f"{path}: entries.{i}: duplicate entry {ref.id}")
        seen.add(ref.id)
        out.append(ref)
    return out


def load_references(paths: list[str | Path] | None = None) -> list[Reference]:
    """Every entry of every paper file (or of ``paths``), in file order."""
    return [ref for p in (paths or reference_files()) for ref in parse_reference_file(p)]
