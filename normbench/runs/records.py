"""The metrics-log record codec: one JSON object per line, strict JSON, non-finite floats as strings.

Every record is written by :func:`record_line` (canonical JSON, sorted keys) after :func:`json_safe` (``inf``,
``-inf`` and ``nan`` become the strings ``"inf"``, ``"-inf"``, ``"nan"``, which ``json.dumps`` would otherwise
write as the non-standard ``Infinity``/``NaN``). Readers get floats back with :func:`from_json_safe` or, for one
value, :func:`as_float`. No torch: tensors are recognised by their ``detach``/``cpu`` methods.
"""

from __future__ import annotations

import json
import math
from typing import Any


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
