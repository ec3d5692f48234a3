"""Shared fixtures: the repository root and tiny configurations that run in seconds on a CPU."""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def copy_workflow(dest: Path, extra: tuple[str, ...] = ()) -> None:
    """Copy what a clone needs to run the workflow (Snakefile, workflow/, config/, and ``extra`` folders)."""
    shutil.copy(REPO / "Snakefile", dest / "Snakefile")
    for folder in ("workflow", "config", *extra):
        shutil.copytree(REPO / folder, dest / folder, ignore=shutil.ignore_patterns("*.sif", "*.log"))


def job_stats(text: str) -> dict[str, int]:
    """Rule -> job count from the "Job stats:" table Snakemake prints (dry run or real run)."""
    assert "Job stats:" in text, text[-3000:]
    counts = {}
    for line in text.split("Job stats:")[1].splitlines()[3:]:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not m or m.group(1) == "total":
            break
        counts[m.group(1)] = int(m.group(2))
    return counts


def epoch_records(train: list[float], test: list[float], step_seconds: float = 0.1) -> list[dict]:
    """Hand-made ``kind: epoch`` records with these train/test errors (%), as the trainer writes them."""
    return [
        {
            "kind": "epoch",
            "epoch": i + 1,
            "train_error": a,
            "test_error": b,
            "train_loss": 1.0,
            "test_loss": 1.0,
            "lr": 0.1,
            "seconds": 1.0,
            "steps": 10,
            "step_seconds": step_seconds,
        }
        for i, (a, b) in enumerate(zip(train, test))
    ]


TINY_EXPERIMENT = {
    "reproduces": ["zaeemzadeh2020/table1"],
    "dataset": "digits",
    "paper_dataset": "cifar10",
    "image_size": 8,
    "models": ["plain20", "preact_resnet20"],
    "seeds": [0, 1],
    "epochs": 2,
    "batch_size": 128,
    "optimizer": {"name": "sgd", "lr": 0.05},
    "augment": {"pad": 1, "flip": False},
}


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture
def tiny_config(tmp_path: Path) -> dict:
    """A valid raw configuration (before defaults) whose results go under ``tmp_path``."""
    return {
        "name": "tiny",
        "results": str(tmp_path / "results"),
        "threads": 1,
        "experiments": {"gap": copy.deepcopy(TINY_EXPERIMENT)},
    }
