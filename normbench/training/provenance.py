"""Provenance of a run: code version, library versions, device, host, timing.

:func:`code_fingerprint` identifies the code that trains a run: the git commit (and whether the checkout has
uncommitted changes) and a hash of the package's source files, which changes with any edit, committed or not.
The trainer stores it in every resume state and records in ``provenance.json`` each attempt's fingerprint and
every change between attempts (``attempts``, ``code_changes``).
"""

from __future__ import annotations

import functools
import hashlib
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch


def git_state(cwd: str | Path | None = None) -> dict[str, Any]:
    """``{"sha": ..., "dirty": bool}`` of the repository holding the code, or nulls outside a git checkout."""
    cwd = Path(cwd or Path(__file__).resolve().parent)
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
        return {"sha": sha, "dirty": bool(status.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None}


def source_hash(root: str | Path | None = None) -> str:
    """SHA-256 (first 16 hex digits) of the package's ``*.py`` files: their relative paths and contents, in
    sorted order."""
    root = Path(root or Path(__file__).resolve().parents[1])
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> dict[str, Any]:
    """``{"sha", "dirty", "source"}`` of the code running in this process (computed once per process)."""
    return {**git_state(), "source": source_hash()}


def describe_code(code: dict[str, Any] | None) -> str:
    """One-line form of a :func:`code_fingerprint`: ``git <sha12>[+dirty], source <hash>``."""
    if not code:
        return "unknown"
    sha = (code.get("sha") or "none")[:12] + ("+dirty" if code.get("dirty") else "")
    return f"git {sha}, source {code.get('source')}"


def library_versions() -> dict[str, str]:
    import numpy
    import torchvision

    import normbench

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "normbench": normbench.__version__,
        "cuda": torch.version.cuda or "none",
        "cudnn": str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else "none",
    }


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def provenance(device: torch.device, seed: int) -> dict[str, Any]:
    """Code version (git state and source hash), library versions, device, host, platform and seed."""
    code = code_fingerprint()
    return {
        "git": {"sha": code["sha"], "dirty": code["dirty"]},
        "source_hash": code["source"],
        "versions": library_versions(),
        "device": str(device),
        "device_name": device_description(device),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "seed": seed,
    }
