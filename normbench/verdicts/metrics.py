"""One table of metrics: what each metric a paper number names means and how it is judged.

Every metric of ``normbench/references/*.yaml`` must be here (an unknown one is an error when the references
load): there is no default tolerance. Each entry gives

- ``kind``: ``trained`` (a per-run number from the run's log, :func:`normbench.runs.folder.summarize`),
  ``relative`` (a trained number against a baseline subject's), ``structure`` (a property of the
  architecture, checked from the registry, never counted as a trained result) or ``not_evaluated`` (no
  computation from the logs yet: such a number reads NOT EVALUATED with ``how``, never NOT RUN when runs
  exist);
- ``unit``, ``higher_is_better``;
- ``floor``: the absolute band ``[-f, f]`` around the paper's value within which ours agrees (about twice the
  seed-to-seed std of the metric: 0.5 pp for errors, where CIFAR seeds differ by 0.1-0.3 pp);
- ``log``: the metric is judged on the log10 scale (``d = log10(ours) - log10(paper)``, the floor in decades:
  ``log10(2)`` is "within a factor 2"). For magnitudes that span orders of magnitude between runs and models
  (activation ranges of 6 and 1.7 million, ratios read off log axes), where an absolute band means nothing;
  our estimate is then the geometric mean over runs (the mean of the logs) and a ratio of two subjects the
  ratio of their geometric means;
- ``reduction``: for a number read from the probe records rather than the run summary, the
  :func:`normbench.verdicts.values.run_value` arguments that make it one number per run (the claims use the
  same function);
- ``how``: how it is computed (or why it is not).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

TRAINED, RELATIVE, STRUCTURE, NOT_EVALUATED = "trained", "relative", "structure", "not_evaluated"


class UnknownMetricError(ValueError):
    """A metric name that is not in :data:`METRIC_TABLE`."""


@dataclass(frozen=True)
class Reduction:
    """How one number per run is read from the run's records: :func:`normbench.verdicts.values.run_value`
    with these arguments (``epochs`` inclusive, ``blocks`` a block selection, ``aggregate`` over the points)."""

    metric: str
    aggregate: str | None = None
    blocks: str = "all"
    epochs: tuple[int, int] | None = None


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str
    unit: str
    how: str
    floor: float | None = None
    higher_is_better: bool = False
    log: bool = False
    reduction: Reduction | None = None


def _m(name: str, kind: str, unit: str, how: str, floor: float | None = None, higher: bool = False):
    return name, Metric(name, kind, unit, how, floor, higher)


def _probe(
    name: str,
    unit: str,
    how: str,
    floor: float,
    reduction: Reduction,
    kind: str = "trained",
    log: bool = True,
):
    """A metric read from the probe records (``reduction``), judged on the log scale by default (the floor
    then in decades)."""
    return name, Metric(name, kind, unit, how, floor, log=log, reduction=reduction)


FACTOR_2 = math.log10(2.0)
"""Floor of a magnitude read off a figure or given as 'about': within a factor 2 (ours)."""
FACTOR_1_5 = math.log10(1.5)
"""Floor of a ratio or a level the text states to two digits ('about 2.5 times', 'about 6e-3'): a factor
1.5 (ours)."""
ORDER_OF_MAGNITUDE = 0.5
"""Floor of 'one order of magnitude': the log10 of ours rounds to the paper's (half a decade either side)."""


_ERR = "percentage points"
METRIC_TABLE: dict[str, Metric] = dict(
    [
        _m("final_test_error", TRAINED, "%", "test error at the last epoch", 0.5),
        _m("best_test_error", TRAINED, "%", "lowest test error over the epochs", 0.5),
        _m("final_train_error", TRAINED, "%", "training error at the last epoch", 0.5),
        _m("final_test_top5_error", TRAINED, "%", "top-5 test error at the last epoch", 0.5),
        _m("test_accuracy", TRAINED, "%", "100 - final test error", 0.5, True),
        _m(
            "relu_nonzero_fraction",
            TRAINED,
            "%",
            "share of non-zero ReLU outputs on the probe batch at the last relu_nonzero probe (Xie footnote 3)",
            2.0,
        ),
        _m("train_accuracy", TRAINED, "%", "100 - final training error", 0.5, True),
        _m("gap_mean", TRAINED, _ERR, "mean over epochs of test error - training error", 1.0),
        _m("gap_max", TRAINED, _ERR, "max over epochs of test error - training error", 2.0),
        _m("gap_fluctuation", TRAINED, _ERR, "gap_max - gap_mean", 2.0),
        _m("final_test_loss", TRAINED, "nats", "mean test cross-entropy at the last epoch", 0.05),
        _m("diverged_epoch", TRAINED, "epoch", "epoch of the diverged record", 5.0),
        _m(
            "train_time_overhead",
            RELATIVE,
            "%",
            "100 (mean epoch training seconds / the baseline's - 1); a point decision (the device, not the "
            "seed, dominates its spread)",
            5.0,
        ),
        _m("test_accuracy_gain", RELATIVE, _ERR, "mean test accuracy - the baseline's mean", 1.0, True),
        _m("params", STRUCTURE, "millions", "parameters of the registry's model (meta device)"),
        _m("depth", STRUCTURE, "layers", "the registry's depth"),
        _m("residual_blocks", STRUCTURE, "blocks", "len(model.blocks) of the registry's model"),
        _m(
            "transition_blocks",
            STRUCTURE,
            "blocks",
            "blocks of the registry's model that change the dimension (their `transition` flag)",
        ),
        _m(
            "modified_blocks",
            STRUCTURE,
            "blocks",
            "positions of model.blocks whose block differs from the baseline's (class or parameter shapes)",
        ),
        _m("params_reduction_factor", STRUCTURE, "x", "parameters of the baseline / the model's"),
        _m("params_increase", STRUCTURE, "%", "100 (parameters of the model / the baseline's - 1)"),
        _probe(
            "first_layer_activation_range",
            "activation units",
            "max - min of the first recorded layer's outputs on the probe batch, at the last activation_dist "
            "probe (the trained model)",
            FACTOR_2,
            Reduction("first_layer_activation_range"),
        ),
        _probe(
            "weight_bulk_abs_bound",
            "weight units",
            "B with at least 90 % of a layer's weights in [-B, B] (max(|q_0.05|, |q_0.95|)), the larger over "
            "the recorded layers (first and last), at the last weight_dist probe; 'most weight values' read "
            "as 90 %",
            FACTOR_2,
            Reduction("weight_bulk_abs_bound", aggregate="max"),
        ),
        _probe(
            "first_infinite_condition_layer",
            "layer",
            "1-based index of the first weight layer whose hidden representation has an infinite condition "
            "number (rank-deficient at working precision) at the last hidden_condition probe; the number of "
            "layers + 1 when none has; floor 10 layers",
            10.0,
            Reduction("first_infinite_condition_layer"),
            log=False,
        ),
        _probe(
            "backward_pattern_stable_iteration",
            "iteration",
            "per run, the first recorded iteration after which every backward profile q^l/q^L up to the first "
            "learning-rate drop is within a factor 2 of the last one (median over layers); the paper's range "
            "'about after 2000 to 3000' is two one-sided numbers, floor 300 iterations ('about': 10 % of "
            "3000)",
            300.0,
            Reduction("backward_pattern_stable_iteration"),
            log=False,
        ),
        _probe(
            "weight_correlation",
            "cosine",
            "Eq. 8's mean signed correlation among filters at the last weight_correlation probe",
            FACTOR_1_5,
            Reduction("weight_correlation", aggregate="final"),
        ),
        _probe(
            "grad_norm_ratio_max",
            "ratio",
            "max over epochs 0-10 ('the first few epochs', ours) of the gradient norm ratio of the first "
            "block that changes the dimension",
            FACTOR_2,
            Reduction("grad_norm_ratio", aggregate="max", blocks="first_transition", epochs=(0, 10)),
        ),
        _probe(
            "weight_correlation_ratio",
            "x",
            "final weight_correlation of the subject over the baseline's (ratio of geometric means over runs)",
            FACTOR_1_5,
            Reduction("weight_correlation", aggregate="final"),
            kind=RELATIVE,
        ),
        _probe(
            "error_moment_ratio_gain",
            "x",
            "median error_moment_ratio (q^1/q^L over the sampled epochs) of the subject over the baseline's "
            "(ratio of geometric means over runs)",
            ORDER_OF_MAGNITUDE,
            Reduction("error_moment_ratio", aggregate="median"),
            kind=RELATIVE,
        ),
        _m(
            "activation_range",
            NOT_EVALUATED,
            "value",
            "per recorded layer, max - min of its outputs (activation_dist probe); claims only, no number",
        ),
    ]
)


def metric_info(name: str) -> Metric:
    """The :class:`Metric` of ``name``; :class:`UnknownMetricError` naming the valid ones otherwise."""
    try:
        return METRIC_TABLE[name]
    except KeyError:
        raise UnknownMetricError(
            f"unknown metric {name!r}; known metrics: {', '.join(sorted(METRIC_TABLE))}"
        ) from None
