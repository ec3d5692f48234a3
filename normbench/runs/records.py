"""The metrics-log record codec: one JSON object per line, strict JSON, non-finite floats as strings.

Every record is written by :func:`record_line` (canonical JSON, sorted keys) after :func:`json_safe` (``inf``,
``-inf`` and ``nan`` become the strings ``"inf"``, ``"-inf"``, ``"nan"``, which ``json.dumps`` would otherwise
write as the non-standard ``Infinity``/``NaN``). Readers get floats back with :func:`from_json_safe` or, for one
value, :func:`as_float`. No torch: tensors are recognised by their ``detach``/``cpu`` methods.

The record kinds and their fields are a JSON Schema, ``record.schema.json`` beside this module (``epoch``,
``probe``, ``diverged``, ``eval_health``, ``procrustes_state``); :func:`check_record` validates one record against it, and the
run-folder reader validates every record it reads.
"""

from __future__ import annotations

import functools
import json
import math
from importlib import resources
from typing import Any

RECORD_KINDS = ("epoch", "probe", "diverged", "eval_health", "procrustes_state")


class RecordError(ValueError):
    """A metrics-log record that is not one of the schema's kinds; the message names the file, line and field."""


@functools.cache
def record_schema() -> dict[str, Any]:
    """The JSON Schema of one metrics-log record (``normbench/runs/record.schema.json``)."""
    return json.loads(resources.files("normbench.runs").joinpath("record.schema.json").read_text())


@functools.cache
def _validator(kind: str):
    """The schema's branch for one record kind, compiled once."""
    from jsonschema import Draft202012Validator

    schema = record_schema()
    return Draft202012Validator({**schema["oneOf"][RECORD_KINDS.index(kind)], "$defs": schema["$defs"]})


def check_record(record: Any, where: str = "record") -> None:
    """Raise :class:`RecordError` naming ``where`` (``file:line``) unless ``record`` is a valid record.

    The kind is checked first, so the message says which kind's field is wrong rather than that no kind matched.
    """
    if not isinstance(record, dict) or record.get("kind") not in RECORD_KINDS:
        kind = record.get("kind") if isinstance(record, dict) else type(record).__name__
        raise RecordError(
            f"{where}: unknown record kind {kind!r} (expected one of {', '.join(RECORD_KINDS)})"
        )
    errors = sorted(_validator(record["kind"]).iter_errors(record), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        field = ".".join(str(p) for p in err.path) or "(record)"
        raise RecordError(f"{where}: {record['kind']} record, field {field}: {err.message}")


def record_line(record: dict[str, Any]) -> str:
    """One line of a metrics log: the record as canonical JSON (sorted keys)."""
    return json.dumps(record, sort_keys=True) + "\n"


NONFINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def json_safe(obj: Any) -> Any:
    """Recursively convert a probe result into strict JSON data.

    Non-finite floats become the strings ``"inf"``, ``"-inf"`` and ``"nan"`` (``json.dumps`` would
    otherwise write the non-standard ``Infinity``/``NaN``); tensors and numpy values become lists/numbers;
    tuples become lists; dict keys become strings. :func:`from_json_safe` inverts the float encoding.
    """
    if isinstance(obj, bool) or obj is None or isinstance(obj, str | int):
        return obj
    if isinstance(obj, float):
        if math.isnan(obj):
            return "nan"
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    if hasattr(obj, "detach") and hasattr(obj, "cpu"):  # torch tensors, without importing torch
        return json_safe(obj.detach().cpu().tolist())
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return json_safe(obj.item())
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy arrays
        return json_safe(obj.tolist())
    raise TypeError(f"cannot make {type(obj).__name__} JSON-safe")


def as_float(x: Any) -> float:
    """One probe value read back from a log as a float: a JSON number or one of the strings of
    :data:`NONFINITE` (written by :func:`json_safe`); ``None`` or anything unreadable is NaN."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def from_json_safe(obj: Any) -> Any:
    """Inverse of :func:`json_safe` for the float encoding: ``"inf"``/``"-inf"``/``"nan"`` -> floats."""
    if isinstance(obj, str) and obj in NONFINITE:
        return NONFINITE[obj]
    if isinstance(obj, dict):
        return {k: from_json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_json_safe(v) for v in obj]
    return obj
