"""Reference numbers read from the probe records (``Metric.reduction``), judged on the log scale where the
metric says so, and the block counts of the architecture: each with a case that must reproduce and a case
built to deviate."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from test_claims import Runs
from test_compare import _ref

from normbench.verdicts.metrics import FACTOR_2
from normbench.verdicts.numbers import compare, compare_one, display_rows, model_metric
from normbench.verdicts.values import bulk_abs_bound, last_record_points


def _probe_runs(root, model, results, probe, method="none"):
    """One run of one epoch per result of ``probe`` (its record after the epoch)."""
    runs = Runs(root)
    for seed, result in enumerate(results):
        runs.add(model, seed=seed, method=method, errors=[10.0], probes={1: {probe: result}})
    return runs


def _ref_n(value, epochs=1, **kw):
    """A reference number whose paper does not state its runs (any number of ours is its protocol)."""
    return _ref(value, runs=None, epochs=epochs, **kw)


def _activations(first_range, last_range=1.0):
    return [
        {"name": "conv1", "layer_index": 0, "range": first_range},
        {"name": "fc", "layer_index": 163, "range": last_range},
    ]


# ------------------------------------------------------------------------------------------ log scale


def test_activation_range_is_judged_within_a_factor_on_the_log_scale(tmp_path):
    """Oyedotun's "range of units' activations is 1.7 million": runs at 1.5-1.9 million reproduce it (the
    geometric mean, a factor 2 band); 6 (the ResNet's) deviates by five decades; runs spread over three
    decades are inconclusive, and two dead layers (range 0, no logarithm) deviate."""
    ref = _ref_n(1.7e6, metric="first_layer_activation_range", model="convnet164", statistic="unstated")

    def row(name, ranges):
        runs = _probe_runs(
            tmp_path / name, "convnet164", [_activations(r) for r in ranges], "activation_dist"
        )
        return compare_one(ref, runs.load())

    good = row("good", [1.5e6, 1.7e6, 1.9e6])
    assert good["verdict"] == "REPRODUCED", good
    assert good["ours"] == pytest.approx((1.5e6 * 1.7e6 * 1.9e6) ** (1 / 3))
    assert good["scale"] == "log10" and good["tolerance"] == pytest.approx(FACTOR_2)
    assert "log10" in good["rule"] and "factor 2" in good["rule"]
    shown = " | ".join(display_rows(pd.DataFrame([good]))[1][0])
    assert "(log10)" in shown and "1.692e+06 (geometric mean of 3)" in shown, shown
    bad = row("bad", [5.0, 6.0, 7.0])
    assert bad["verdict"] == "DEVIATES" and bad["delta"] == pytest.approx(math.log10(6.0 / 1.7e6), abs=0.01)
    assert row("wide", [1.7e3, 1.7e6, 1.7e9])["verdict"] == "INCONCLUSIVE"
    dead = row("dead", [0.0, 0.0])
    assert dead["verdict"] == "DEVIATES" and "≤ 0 (no logarithm)" in dead["rule"]
    assert row("one_dead", [0.0, 1.7e6, 1.7e6])["verdict"] == "INCONCLUSIVE"
    assert compare_one(ref, [])["verdict"] == "NOT RUN"
    bare = Runs(tmp_path / "bare").many("convnet164", [[10.0]] * 3).load()  # no activation_dist probe
    row = compare_one(ref, bare)
    assert row["verdict"] == "INCONCLUSIVE" and "record the 'activation_dist' probe" in row["rule"], row


def test_the_first_recorded_layer_is_the_lowest_layer_index():
    """Records out of order: the first layer's range is the one with the lowest ``layer_index``."""
    result = list(reversed(_activations(1.7e6, last_range=3.0)))
    assert last_record_points(result, "first_layer_activation_range", None) == [1.7e6]


def _weights(bounds):
    q = [0.0, 0.05, 0.5, 0.95, 1.0]
    return [
        {"name": f"l{i}", "layer_index": i, "quantiles": {"q": q, "values": [-9e9, -b, 0.0, b / 2, 9e9]}}
        for i, b in enumerate(bounds)
    ]


def test_weight_bulk_bound_is_the_larger_central_quantile_over_the_layers(tmp_path):
    """'most weight values are between -200,000 and 200,000': per layer max(|q_0.05|, |q_0.95|) (the
    extremes at 9e9 do not count), the larger over the recorded layers; records without those quantiles
    give no value rather than a wrong one."""
    assert bulk_abs_bound(_weights([2e5])[0]) == 2e5
    assert math.isnan(bulk_abs_bound({"quantiles": {"q": [0.0, 1.0], "values": [-1.0, 1.0]}}))
    ref = _ref_n(
        2e5, metric="weight_bulk_abs_bound", model="convnet164", statistic="unstated", qualifier="about"
    )
    good = _probe_runs(
        tmp_path / "g", "convnet164", [_weights([1e3, b]) for b in (1.8e5, 2e5, 2.2e5)], "weight_dist"
    )
    assert compare_one(ref, good.load())["verdict"] == "REPRODUCED"
    small = _probe_runs(tmp_path / "s", "convnet164", [_weights([0.1, 0.2])] * 3, "weight_dist")
    assert compare_one(ref, small.load())["verdict"] == "DEVIATES"


def test_grad_norm_ratio_max_reads_the_first_transition_block_in_the_first_epochs(tmp_path):
    """'the gradient norm ratio of the first transition block goes up to 100 in the first few epochs': the
    max over epochs 0-10 of the first block that changes the dimension. A larger peak of a non-transition
    block, of the second transition, or after epoch 10 does not count."""

    def blocks(first, other):
        return [
            {"index": 0, "name": "blocks.0", "transition": False, "ratio": 500.0},
            {"index": 1, "name": "blocks.1", "transition": True, "ratio": first},
            {"index": 2, "name": "blocks.2", "transition": True, "ratio": other},
        ]

    def runs(root, peak):
        out = Runs(root)
        for seed in range(3):
            probes = {e: {"grad_norm_ratio": blocks(peak if e == 4 else 2.0, 900.0)} for e in range(0, 11, 2)}
            probes[12] = {"grad_norm_ratio": blocks(5000.0, 900.0)}
            out.add("plain83", seed=seed, errors=[10.0] * 12, probes=probes)
        return out.load()

    ref = _ref_n(
        100, epochs=12, metric="grad_norm_ratio_max", model="plain83", statistic="unstated", qualifier="about"
    )
    row = compare_one(ref, runs(tmp_path / "a", 110.0))
    assert row["verdict"] == "REPRODUCED" and row["ours"] == pytest.approx(110.0), row
    assert compare_one(ref, runs(tmp_path / "b", 3.0))["verdict"] == "DEVIATES"


def test_a_ratio_of_two_subjects_is_a_ratio_of_geometric_means(tmp_path):
    """Xie: 'the correlation of msra+L2 reg is about 2.5 times higher than that of ortho init+ortho reg'.
    The final weight_correlation of each side; 0.015 vs 0.006 reproduces 2.5, equal correlations deviate
    from it, and the interval comes from both sides' spreads."""
    ref = _ref_n(
        2.5,
        epochs=2,
        metric="weight_correlation_ratio",
        model="convnet44",
        statistic="unstated",
        qualifier="about",
        baseline={"model": "convnet44", "method": "ortho_init+ortho_reg"},
    )

    def row(name, msra, ortho):
        runs = Runs(tmp_path / name)
        for method, values in (("none", msra), ("ortho_init+ortho_reg", ortho)):
            for seed, v in enumerate(values):
                probes = {e: {"weight_correlation": {"mean": v * (0.5 if e == 0 else 1.0)}} for e in (0, 2)}
                runs.add("convnet44", seed=seed, method=method, errors=[10.0] * 2, probes=probes)
        return compare([ref], runs.load()).iloc[0].to_dict()

    good = row("good", [0.0145, 0.015, 0.0155], [0.0058, 0.006, 0.0062])
    assert good["verdict"] == "REPRODUCED" and good["ours"] == pytest.approx(2.5, rel=0.01), good
    assert good["estimator"] == "ratio of geometric means"
    assert row("equal", [0.006, 0.0061, 0.0059], [0.006, 0.0061, 0.0059])["verdict"] == "DEVIATES"
    assert row("noisy", [0.001, 0.015, 0.2], [0.006, 0.0061, 0.0059])["verdict"] == "INCONCLUSIVE"


def test_first_infinite_condition_layer(tmp_path):
    """'starting from the eightieth layer, have hidden representations with infinite condition numbers': the
    1-based index of the first infinite kappa; a network with none gets the number of layers + 1, so a
    ResNet-like run deviates from 80 rather than going unjudged."""

    def kappas(first_inf, n=164):
        return [
            {"index": i, "name": f"l{i}", "kappa": math.inf if first_inf and i + 1 >= first_inf else 10.0}
            for i in range(n)
        ]

    assert last_record_points(kappas(80), "first_infinite_condition_layer", None) == [80.0]
    assert last_record_points(kappas(None), "first_infinite_condition_layer", None) == [165.0]
    ref = _ref_n(80, metric="first_infinite_condition_layer", model="convnet164", statistic="unstated")
    near = _probe_runs(tmp_path / "n", "convnet164", [kappas(f) for f in (76, 80, 84)], "hidden_condition")
    assert compare_one(ref, near.load())["verdict"] == "REPRODUCED"
    none = _probe_runs(tmp_path / "x", "convnet164", [kappas(None)] * 3, "hidden_condition")
    row = compare_one(ref, none.load())
    assert row["verdict"] == "DEVIATES" and row["ours"] == 165.0 and row["scale"] == "linear"


def test_stable_iteration_range_is_two_one_sided_numbers(tmp_path):
    """Xie Fig. 4's 'about after 2000 to 3000 iterations' as 'at least 2000' and 'at most 3000' (floor 300):
    runs stable at 2500 reproduce both ends; runs stable at 500 reproduce the upper end and deviate from
    the lower one."""

    def runs(root, settle_epoch):
        out = Runs(root)
        for seed in range(3):
            probes = {
                e: {"backward_moments": {"q": [0.1 * (f := 8.0 if e < settle_epoch else 1.1), 0.3 * f, 1.0]}}
                for e in range(0, 301, 10)
            }
            out.add("convnet44", seed=seed, errors=[10.0] * 300, probes=probes)  # 10 steps an epoch
        return out.load()

    def ref(value, qualifier):
        return _ref_n(
            value,
            epochs=300,
            metric="backward_pattern_stable_iteration",
            model="convnet44",
            statistic="unstated",
            qualifier=qualifier,
        )

    lower, upper = ref(2000, "lower_bound"), ref(3000, "upper_bound")
    settled = runs(tmp_path / "a", 250)
    assert compare_one(lower, settled)["ours"] == 2500.0
    assert [compare_one(r, settled)["verdict"] for r in (lower, upper)] == ["REPRODUCED", "REPRODUCED"]
    early = runs(tmp_path / "b", 50)
    assert [compare_one(r, early)["verdict"] for r in (lower, upper)] == ["DEVIATES", "REPRODUCED"]


# ------------------------------------------------------------------------------------------ structure


@pytest.mark.parametrize(
    ("metric", "model", "baseline", "expected"),
    [
        ("residual_blocks", "preact_resnet164", None, 54),
        ("residual_blocks", "preact_resnet1001", None, 333),
        ("transition_blocks", "preact_resnet164", None, 3),
        ("transition_blocks", "procresnet166", None, 2),  # the stem is not in model.blocks
        ("modified_blocks", "procresnet166", "preact_resnet164", 3),
        ("modified_blocks", "preact_resnet164", "preact_resnet164", 0),
    ],
)
def test_block_counts_come_from_the_registrys_model(metric, model, baseline, expected):
    ref = _ref(
        3,
        metric=metric,
        model=model,
        statistic="none",
        runs=None,
        baseline={"model": baseline} if baseline else None,
    )
    assert model_metric(ref) == expected


def test_structure_ratios_follow_their_qualifier():
    """ProcResNet-166 adds under 1 % parameters (upper bound: 0.69 % holds, 0.5 % would not); ResNet-1001 /
    ProcResNet-274 = 3.65 is 'about 4' (10 %) but not exactly 4."""
    kw = dict(statistic="none", runs=None)
    inc = dict(metric="params_increase", model="procresnet166", baseline={"model": "preact_resnet164"}, **kw)
    assert compare_one(_ref(1, qualifier="upper_bound", **inc), [])["verdict"] == "REPRODUCED"
    assert compare_one(_ref(0.5, qualifier="upper_bound", **inc), [])["verdict"] == "DEVIATES"
    red = dict(
        metric="params_reduction_factor", model="procresnet274", baseline={"model": "preact_resnet1001"}, **kw
    )
    row = compare_one(_ref(4, qualifier="about", **red), [])
    assert row["verdict"] == "REPRODUCED" and row["ours"] == pytest.approx(3.65, abs=0.01)
    assert compare_one(_ref(4, **red), [])["verdict"] == "DEVIATES"


def test_every_paper_number_has_a_computation():
    """No reference number of the four papers reads NOT EVALUATED any more: each metric is computed from the
    runs, the probes or the registry."""
    from normbench.references import load_references
    from normbench.verdicts.metrics import NOT_EVALUATED, metric_info

    kinds = {r.metric: metric_info(r.metric).kind for r in load_references()}
    assert [m for m, k in kinds.items() if k == NOT_EVALUATED] == []


def test_reductions_read_what_the_probes_write():
    """Every probe reduction on the records the real probes write for a small network (not hand-made
    ones): a finite number each, the grad-norm peak is the first dimension-changing block's ratio, the
    activation range the first weight layer's, and a well-conditioned network has no infinite layer
    (layers + 1)."""
    import torch

    from normbench.models import build_model
    from normbench.probes.record import record_probes
    from normbench.runs.folder import Run
    from normbench.verdicts.metrics import METRIC_TABLE
    from normbench.verdicts.numbers import per_run_value

    torch.manual_seed(0)
    model = build_model("plain20", num_classes=10, in_channels=1)
    batch = (torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,)))
    names = ["activation_dist", "weight_dist", "hidden_condition", "grad_norm_ratio", "weight_correlation"]
    probes = record_probes(model, batch, [*names, "backward_moments"])["probes"]
    epoch = {"kind": "epoch", "epoch": 1, "steps": 10, "lr": 0.1}
    run = Run(".", {"seed": 0}, [epoch, {"kind": "probe", "epoch": 1, "probes": probes}])
    values = {
        name: per_run_value(run, name)
        for name, m in METRIC_TABLE.items()
        if m.reduction is not None and m.kind == "trained" and name != "backward_pattern_stable_iteration"
    }
    assert all(math.isfinite(v) for v in values.values()), values
    first_transition = next(b for b in probes["grad_norm_ratio"] if b["transition"])
    assert values["grad_norm_ratio_max"] == first_transition["ratio"]
    first_layer = min(probes["activation_dist"], key=lambda r: r["layer_index"])
    assert values["first_layer_activation_range"] == first_layer["range"]
    assert values["first_infinite_condition_layer"] == len(probes["hidden_condition"]) + 1
