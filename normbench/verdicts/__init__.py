"""The verdict engine's shared pieces: interval statistics, run accounting and the metric table.

This wing owns how a number or a claim is judged: the Student-t and chi-square intervals
(:mod:`~normbench.verdicts.statistics`), which runs count (finished, diverged, incomplete:
:mod:`~normbench.verdicts.accounting`) and what each metric means (direction, unit, floor, how it is
computed: :mod:`~normbench.verdicts.metrics`). It imports no torch and nothing that trains; the comparison
(:mod:`normbench.verdicts.numbers`) and the claims (:mod:`normbench.verdicts.claims`) build on it.
"""

from typing import Literal, get_args

from normbench.verdicts.accounting import RunCounts, count_runs, run_status
from normbench.verdicts.metrics import METRIC_TABLE, Metric, UnknownMetricError, metric_info
from normbench.verdicts.statistics import (
    CONFIDENCE,
    chi2_sd_interval,
    t_quantile,
    welch_df,
)

Verdict = Literal["REPRODUCED", "DEVIATES", "INCONCLUSIVE", "PROXY", "NOT EVALUATED", "NOT RUN"]
"""The type of a verdict: plain strings (they go into CSV, JSON and HTML as they are), one of :data:`VERDICTS`."""

REPRODUCED: Verdict = "REPRODUCED"
DEVIATES: Verdict = "DEVIATES"
INCONCLUSIVE: Verdict = "INCONCLUSIVE"
PROXY: Verdict = "PROXY"
NOT_EVALUATED: Verdict = "NOT EVALUATED"
NOT_RUN: Verdict = "NOT RUN"
VERDICTS: tuple[Verdict, ...] = get_args(Verdict)
"""Every verdict a number or a claim can get, in display order: the one vocabulary every module uses."""

__all__ = [
    "CONFIDENCE",
    "DEVIATES",
    "INCONCLUSIVE",
    "NOT_EVALUATED",
    "NOT_RUN",
    "PROXY",
    "REPRODUCED",
    "METRIC_TABLE",
    "VERDICTS",
    "Metric",
    "RunCounts",
    "UnknownMetricError",
    "Verdict",
    "chi2_sd_interval",
    "count_runs",
    "metric_info",
    "run_status",
    "t_quantile",
    "welch_df",
]
