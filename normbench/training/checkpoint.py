"""Atomic checkpoints that survive a kill at any moment.

``save_atomic`` writes to a temporary file in the same folder (a name unique to the process), fsyncs it, keeps the previous checkpoint as
``<name>.prev`` and renames the new one into place (rename is atomic on POSIX). ``load_latest`` reads the
checkpoint, and if it is truncated or corrupt, says so and falls back to ``<name>.prev``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from normbench.runs.folder import temp_path, with_filename


def save_atomic(obj: Any, path: str | Path) -> None:
    """Write ``obj`` to a unique temporary file (``<name>.<pid>-<random>.tmp``), fsync it, keep the old
    checkpoint as ``<name>.prev`` and rename the new one into place. On an error (a full disk, ...) the
    temporary file is removed and the error names ``path``."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            path.replace(path.with_name(path.name + ".prev"))
        tmp.replace(path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise with_filename(err, path) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_latest(path: str | Path, log: Callable[[str], None] = print) -> Any | None:
    """The newest readable checkpoint at ``path`` (or its ``.prev``), or ``None`` when there is none."""
    path = Path(path)
    for candidate in (path, path.with_name(path.name + ".prev")):
        if not candidate.exists():
            continue
        try:
            return torch.load(candidate, map_location="cpu", weights_only=False)
        except Exception as err:  # truncated zip, unpickling error, ...: report and try the older one
            log(
                f"checkpoint {candidate} is unreadable ({type(err).__name__}: {err}); trying the previous one"
            )
    return None
