"""Provenance of a run: code version, library versions, device, host, timing."""

from __future__ import annotations

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
    return {
        "git": git_state(),
        "versions": library_versions(),
        "device": str(device),
        "device_name": device_description(device),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "seed": seed,
    }
