"""The verdict engine's shared pieces: interval statistics, run accounting and the metric table.

This wing owns how a number or a claim is judged: the Student-t and chi-square intervals
(:mod:`~normbench.verdicts.statistics`), which runs count (finished, diverged, incomplete:
:mod:`~normbench.verdicts.accounting`) and what each metric means (direction, unit, floor, how it is
computed: :mod:`~normbench.verdicts.metrics`). It imports no torch and nothing that trains; the comparison
(:mod:`normbench.verdicts.numbers`) and the claims (:mod:`normbench.verdicts.claims`) build on it.
"""

from normbench.verdicts.accounting import RunCounts, count_runs, run_status
from normbench.verdicts.metrics import METRIC_TABLE, Metric, UnknownMetricError, metric_info
from normbench.verdicts.statistics import (
    CONFIDENCE,
    chi2_sd_interval,
    t_quantile,
    welch_df,
)

REPRODUCED, DEVIATES, INCONCLUSIVE = "REPRODUCED", "DEVIATES", "INCONCLUSIVE"
PROXY, NOT_EVALUATED, NOT_RUN = "PROXY", "NOT EVALUATED", "NOT RUN"
VERDICTS = (REPRODUCED, DEVIATES, INCONCLUSIVE, PROXY, NOT_EVALUATED, NOT_RUN)
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
    "chi2_sd_interval",
    "count_runs",
    "metric_info",
    "run_status",
    "t_quantile",
    "welch_df",
]
