"""Which runs count: every matched run is finished, diverged, incomplete or damaged, and each row says how many.

- **diverged**: its log holds a ``diverged`` record (training stopped on a non-finite loss). It is a
  result, never dropped: a finite paper number with diverged runs on our side is not REPRODUCED, and a claim
  never passes on the survivors alone (:mod:`normbench.verdicts.numbers`, :mod:`normbench.verdicts.claims`).
- **incomplete**: its log stops before the configured epochs without diverging (killed, still running, or
  copied half-way). It is excluded from every statistic: its "final" numbers are not final.
- **damaged**: its finished log cannot be read (a bad line, a record that breaks the record schema): the
  reader names the file and line, and the run is excluded from every statistic, counted, never silently
  shortened (:func:`normbench.runs.folder.load_runs` with ``on_damaged``).
- **finished**: every configured epoch is logged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

FINISHED, DIVERGED, INCOMPLETE, DAMAGED = "finished", "diverged", "incomplete", "damaged"


def run_status(run: Any) -> str:
    """``finished``, ``diverged``, ``incomplete`` or ``damaged`` for a :class:`normbench.runs.folder.Run`
    (module docstring)."""
    if getattr(run, "damaged", ""):
        return DAMAGED
    if run.summary.get("diverged"):
        return DIVERGED
    want = run.config.get("epochs")
    done = run.summary.get("epochs", 0)
    if want is not None and done < want:
        return INCOMPLETE
    return FINISHED


@dataclass(frozen=True)
class RunCounts:
    finished: int = 0
    diverged: int = 0
    incomplete: int = 0
    damaged: int = 0

    @property
    def total(self) -> int:
        return self.finished + self.diverged + self.incomplete + self.damaged

    def describe(self) -> str:
        """E.g. ``5 finished, 2 diverged, 1 incomplete (excluded)``."""
        parts = [f"{self.finished} finished"]
        if self.diverged:
            parts.append(f"{self.diverged} diverged")
        if self.incomplete:
            parts.append(f"{self.incomplete} incomplete (excluded)")
        if self.damaged:
            parts.append(f"{self.damaged} damaged (excluded)")
        return ", ".join(parts)


def count_runs(runs: Iterable[Any]) -> RunCounts:
    statuses = [run_status(r) for r in runs]
    return RunCounts(*(statuses.count(s) for s in (FINISHED, DIVERGED, INCOMPLETE, DAMAGED)))


def finished_runs(runs: Iterable[Any]) -> list[Any]:
    """The runs that enter a statistic: every configured epoch logged, not diverged."""
    return [r for r in runs if run_status(r) == FINISHED]
