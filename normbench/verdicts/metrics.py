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
- ``how``: how it is computed (or why it is not).
"""

from __future__ import annotations

from dataclasses import dataclass

TRAINED, RELATIVE, STRUCTURE, NOT_EVALUATED = "trained", "relative", "structure", "not_evaluated"


class UnknownMetricError(ValueError):
    """A metric name that is not in :data:`METRIC_TABLE`."""


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str
    unit: str
    how: str
    floor: float | None = None
    higher_is_better: bool = False


def _m(name: str, kind: str, unit: str, how: str, floor: float | None = None, higher: bool = False):
    return name, Metric(name, kind, unit, how, floor, higher)


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
        *(
            _m(name, STRUCTURE, unit, "block counts and ratios of the architecture: not computed yet")
            for name, unit in (
                ("residual_blocks", "blocks"),
                ("transition_blocks", "blocks"),
                ("modified_blocks", "blocks"),
                ("params_reduction_factor", "ratio"),
                ("params_increase", "millions"),
            )
        ),
        *(
            _m(name, NOT_EVALUATED, unit, how)
            for name, unit, how in (
                (
                    "first_layer_activation_range",
                    "value",
                    "recorded by the activation_distributions probe; the claims read it, the number's "
                    "reduction is not implemented",
                ),
                (
                    "activation_range",
                    "value",
                    "recorded by the activation_distributions probe (max - min of a layer's outputs, per recorded "
                    "layer); the claims read it, the number's reduction is not implemented",
                ),
                (
                    "first_infinite_condition_layer",
                    "layer",
                    "recorded by the weight_condition_number probe; the reduction to a layer index is not "
                    "implemented",
                ),
                (
                    "backward_pattern_stable_iteration",
                    "iteration",
                    "the paper gives a range ('about after 2000 to 3000 iterations'), not a number: the claim "
                    "xie2017/fig4_pattern_stable_by_3000 checks each run's stable iteration instead",
                ),
                (
                    "weight_bulk_abs_bound",
                    "value",
                    "needs a bound on the weight histogram's bulk (not defined)",
                ),
                (
                    "weight_correlation",
                    "cosine",
                    "recorded by the weight_correlation probe; the reduction to the paper's number is not "
                    "implemented",
                ),
                ("weight_correlation_ratio", "ratio", "a ratio of two weight_correlation reductions"),
                ("error_moment_ratio_gain", "ratio", "a ratio of two error_moment_ratio reductions"),
                (
                    "grad_norm_ratio_max",
                    "ratio",
                    "recorded by the grad_norm_ratio probe; reduction not implemented",
                ),
            )
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
