"""Atomic checkpoints that survive a kill at any moment.

``save_atomic`` writes to a temporary file in the same folder (a name unique to the process), fsyncs it, keeps the previous checkpoint as
``<name>.prev`` and renames the new one into place (rename is atomic on POSIX). ``load_latest`` reads the
checkpoint, and if it is truncated or corrupt, says so and falls back to ``<name>.prev`` (when that is
unreadable or missing too, it says the run starts afresh).

``save_atomic``'s optional ``event`` callable is called at two named moments of the write, for fault
injection (:data:`normbench.training.trainer.FAULT_POINTS`): ``event("checkpoint_tmp", tmp=...)`` once the
temporary file is written and fsynced, nothing renamed yet, and ``event("checkpoint_rotated", tmp=...)`` once
the old checkpoint is renamed to ``<name>.prev`` and the new one is not yet in place (only when there was an
old one).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from normbench.runs.folder import temp_path, with_filename


def save_atomic(obj: Any, path: str | Path, event: Callable[..., None] | None = None) -> None:
    """Write ``obj`` to a unique temporary file (``<name>.<pid>-<random>.tmp``), fsync it, keep the old
    checkpoint as ``<name>.prev`` and rename the new one into place. On an error (a full disk, ...) the
    temporary file is removed and the error names ``path``. ``event``: see the module docstring."""
    path = Path(path)
    tmp = temp_path(path)
    event = event or (lambda point, **info: None)
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        event("checkpoint_tmp", tmp=tmp)
        if path.exists():
            path.replace(path.with_name(path.name + ".prev"))
            event("checkpoint_rotated", tmp=tmp)
        tmp.replace(path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise with_filename(err, path) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_latest(path: str | Path, log: Callable[[str], None] = print) -> Any | None:
    """The newest readable checkpoint at ``path`` (or its ``.prev``), or ``None`` when there is none. An
    unreadable one is reported, ending "trying the previous one" when ``.prev`` exists and "starting afresh"
    when nothing older is left (the caller then starts the run from scratch)."""
    path = Path(path)
    candidates = [p for p in (path, path.with_name(path.name + ".prev")) if p.exists()]
    for i, candidate in enumerate(candidates):
        try:
            return torch.load(candidate, map_location="cpu", weights_only=False)
        except Exception as err:  # truncated zip, unpickling error, ...: report and try the older one
            then = "trying the previous one" if i + 1 < len(candidates) else "starting afresh"
            log(f"checkpoint {candidate} is unreadable ({type(err).__name__}: {err}); {then}")
    return None
