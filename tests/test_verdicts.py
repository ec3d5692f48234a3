"""The verdict engine fed runs built to fool it: diverged, unfinished, too-wide, zero-spread, unknown metrics,
structure rows, and Monte Carlo checks that the Student-t intervals keep their nominal error rates."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import yaml
from test_claims import Runs, _claim, _eval
from test_compare import _ref

from normbench.references import ReferenceError, load_claims, parse_reference_file
from normbench.verdicts import DEVIATES, NOT_RUN, REPRODUCED, chi2_sd_interval, t_quantile
from normbench.verdicts.claims import Sample, compare_less
from normbench.verdicts.numbers import compare, compare_one, decide, verdict_counts


def _number_runs(tmp_path, values, epochs_logged=None, epochs=None, diverged=()):
    """Runs of plain20 on Zaeemzadeh Table 1 whose final test error is each of ``values``."""
    runs = Runs(tmp_path)
    for seed, v in enumerate(values):
        logged = epochs_logged or 1
        runs.add(
            "plain20",
            seed=seed,
            errors=[v] * logged,
            epochs=epochs or logged,
            diverged_at=1 if seed in diverged else None,
        )
    return runs.load()


def _err_ref(value, runs=None, epochs=None, statistic="mean"):
    return _ref(value, runs=runs, epochs=epochs, metric="final_test_error", statistic=statistic)


def test_verdicts_import_no_torch():
    code = "import sys, normbench.verdicts; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_student_t_quantiles():
    assert t_quantile(2) == pytest.approx(4.302653, rel=1e-6)
    assert t_quantile(4) == pytest.approx(2.776445, rel=1e-6)
    assert math.isnan(t_quantile(0))
    lo, hi = chi2_sd_interval(1.0, 5)
    assert lo == pytest.approx(0.599, abs=1e-3) and hi == pytest.approx(2.874, abs=1e-3)


# ------------------------------------------------------------------------------------------ diverged runs


def test_diverged_runs_are_never_dropped(tmp_path):
    # 4 of 10 diverged, the 6 survivors sit on the paper's number: the old rule said REPRODUCED
    values = [6.0, 6.05, 5.95, 6.0, 6.02, 5.98, 6.0, 6.0, 6.0, 6.0]
    runs = _number_runs(tmp_path, values, diverged={6, 7, 8, 9})
    row = compare_one(_err_ref(6.0), runs)
    assert row["verdict"] == "INCONCLUSIVE"
    assert row["n"] == 6 and row["diverged"] == 4 and row["runs"] == 10
    assert "4 of 10 runs diverged" in row["rule"]


def test_all_runs_diverged_against_a_finite_number_deviates(tmp_path):
    row = compare_one(_err_ref(6.0), _number_runs(tmp_path, [6.0, 6.0, 6.0], diverged={0, 1, 2}))
    assert row["verdict"] == "DEVIATES" and row["diverged"] == 3 and row["n"] == 0


def test_claim_never_passes_on_survivors(tmp_path):
    # "ProcResNet-166 < ResNet-164" with 2 of 5 ProcResNet runs diverged: 3 survivors far below
    runs = Runs(tmp_path)
    for seed in range(5):
        runs.add(
            "procresnet22",
            method="procrustes",
            seed=seed,
            errors=[4.0 + 0.01 * seed],
            diverged_at=1 if seed < 2 else None,
        )
        runs.add("preact_resnet20", seed=seed, errors=[6.0 + 0.01 * seed])
    args = {
        "metric": "final_test_error",
        "chains": [[{"model": "procresnet22", "method": "procrustes"}, {"model": "preact_resnet20"}]],
    }
    row = _eval(_claim("order_less_than", args), runs)
    assert row["verdict"] == "INCONCLUSIVE", row["measured"]
    assert "2 run(s) of procresnet22 procrustes diverged" in row["measured"]
    # the other way round the diverged runs support the claim: it passes
    rev = {
        "metric": "final_test_error",
        "chains": [[{"model": "preact_resnet20"}, {"model": "procresnet22", "method": "procrustes"}]],
    }
    assert _eval(_claim("order_less_than", rev), runs)["verdict"] == "DEVIATES"


# ------------------------------------------------------------------------------------------ damaged runs


def test_a_damaged_log_is_counted_and_excluded_never_shortened(tmp_path, capsys):
    """Five runs at the paper's number, one with a bad line in the middle of its finished log: loading without
    on_damaged is the error naming file and line; with it the run is kept as damaged, the row uses the four
    others and says one damaged run was excluded; a claim's sample says so too; the CLI warns and goes on."""
    from normbench.cli.main import main
    from normbench.runs.folder import load_runs

    runs = Runs(tmp_path)
    for seed in range(5):
        runs.add("plain20", seed=seed, errors=[6.0 + 0.01 * seed] * 3)
        runs.add("preact_resnet20", seed=seed, errors=[9.0 + 0.01 * seed] * 3)
    bad = runs.paths[2]  # plain20 seed 1
    lines = bad.read_text().splitlines()
    lines[1] = (
        lines[1]
        .replace('"kind": "epoch"', '"kind": "epoch", "typo": 1')
        .replace('"train_error": 1.0', '"train_error": -4')
    )
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"{bad}:2: epoch record, field train_error"):
        load_runs(runs.paths)
    seen = []
    loaded = load_runs(runs.paths, on_damaged=seen.append)
    assert len(loaded) == 10 and len(seen) == 1 and f"{bad}:2:" in seen[0]
    row = compare_one(_err_ref(6.0), [r for r in loaded if r.config["model"] == "plain20"])
    assert row["runs"] == 5 and row["damaged"] == 1 and row["n"] == 4, row
    assert "1 damaged run(s) excluded" in row["rule"] and row["verdict"] != "NOT RUN"
    args = {"metric": "final_test_error", "chains": [[{"model": "plain20"}, {"model": "preact_resnet20"}]]}
    claim = _eval(_claim("order_less_than", args), loaded)
    assert "1 damaged, excluded" in claim["measured"], claim["measured"]
    # through the CLI: one warning line naming the file and line, the comparison written
    out = tmp_path / "out"
    assert main(["compare", str(tmp_path), "--out-dir", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"normbench compare: warning: {bad}:2: epoch record" in err and "excluded (damaged)" in err
    assert (out / "comparison.csv").stat().st_size > 0
    # tables (and figures) leave it out with the same warning: 4 plain20 runs in the table
    assert main(["tables", str(tmp_path), "--out-dir", str(tmp_path / "tables")]) == 0
    assert "normbench tables: warning: " in capsys.readouterr().err
    table = (tmp_path / "tables" / "e.csv").read_text()
    assert next(line for line in table.splitlines() if line.startswith("e,plain20,")).split(",")[5] == "4", (
        table
    )


# ---------------------------------------------------------------------------------------- incomplete runs


def test_unfinished_runs_are_incomplete_and_excluded(tmp_path):
    # five runs configured for 160 epochs, killed after 20, on the paper's number
    runs = _number_runs(tmp_path, [6.0, 6.01, 5.99, 6.0, 6.0], epochs_logged=20, epochs=160)
    row = compare_one(_err_ref(6.0, epochs=160), runs)
    assert row["verdict"] != "REPRODUCED" and row["n"] == 0 and row["incomplete"] == 5
    assert "5 incomplete run(s) excluded" in row["rule"]
    claim_runs = Runs(tmp_path / "c")
    for seed in range(3):
        claim_runs.add("plain20", seed=seed, errors=[5.0] * 2, epochs=10)
        claim_runs.add("preact_resnet20", seed=seed, errors=[9.0 + seed])
    args = {"metric": "final_test_error", "chains": [[{"model": "plain20"}, {"model": "preact_resnet20"}]]}
    row = _eval(_claim("order_less_than", args), claim_runs)
    assert row["verdict"] == "INCONCLUSIVE" and "3 incomplete, excluded" in row["measured"]


# ------------------------------------------------------------------------------------------------ spreads


@pytest.mark.parametrize(
    "ours, verdict",
    [
        ([6.0, 6.15, 5.85, 6.3, 5.7], "INCONCLUSIVE"),  # s = 0.24 vs 0.14: interval [1.07, 5.1] x paper
        ([6.0, 6.3, 5.7, 6.6, 5.4], "DEVIATES"),  # s = 0.47 (Jia Table 1's 0.14 vs 0.54 case): [2.0, 9.7]
        ([6.0, 7.0, 5.0, 8.0, 4.0, 6.5, 5.5, 7.5, 4.5, 6.0], "DEVIATES"),  # s = 1.3: the interval > 2 x 0.14
        ([6.0, 6.0, 6.0, 6.0, 6.0], "DEVIATES"),  # zero spread: the seeds had no effect
    ],
)
def test_std_rows_are_judged_as_spreads(tmp_path, ours, verdict):
    row = compare_one(_err_ref(0.14, statistic="std"), _number_runs(tmp_path, ours))
    assert row["verdict"] == verdict, row["rule"]
    if len(set(ours)) == 1:
        assert "zero spread over 5 runs" in row["rule"]


def test_a_std_matching_the_paper_is_reproduced_only_when_precise(tmp_path):
    rng = np.random.default_rng(0)
    many = list(6.0 + 0.14 * rng.standard_normal(60))
    assert (
        compare_one(_err_ref(0.14, statistic="std"), _number_runs(tmp_path, many))["verdict"] == "REPRODUCED"
    )
    few = [6.0, 6.14, 5.86]  # s = 0.14 exactly, but 3 runs cannot pin a spread down
    row = compare_one(_err_ref(0.14, statistic="std"), _number_runs(tmp_path / "few", few))
    assert row["verdict"] == "INCONCLUSIVE"


# ------------------------------------------------------------------------------------ metrics and structure


def test_unknown_metric_is_an_error_when_references_load(tmp_path):
    doc = {
        "paper": "zaeemzadeh2020",
        "title": "t",
        "source": "s",
        "protocols": {"table1": {"label": "Table 1", "dataset": "cifar10", "description": "d"}},
        "entries": [
            {
                "table": "table1",
                "row": "r",
                "column": "c",
                "metric": "weight_corelation",
                "units": "%",
                "statistic": "unstated",
                "value": 1.0,
                "model": "plain20",
            }
        ],
    }
    path = tmp_path / "zaeemzadeh2020.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ReferenceError, match=r"entries\.0: unknown metric 'weight_corelation'"):
        parse_reference_file(path)


def test_uncomputed_metric_with_runs_is_not_evaluated_not_not_run(tmp_path):
    ref = _ref(6.0, runs=None, metric="activation_range", statistic="unstated")
    row = compare_one(ref, _number_runs(tmp_path, [5.0, 5.0]))
    assert row["verdict"] == "NOT EVALUATED" and "2 runs matched" in row["rule"]
    assert compare_one(ref, [])["verdict"] == "NOT RUN"


def test_structure_rows_are_counted_apart(tmp_path):
    refs = [
        _ref(1.71, metric="params", statistic="none", model="preact_resnet164"),
        _err_ref(6.0, runs=2),
    ]
    df = compare(refs, _number_runs(tmp_path, [6.0, 6.01]))
    assert list(df["kind"]) == ["structure", "trained"]
    trained = verdict_counts(df).set_index("paper").loc["zaeemzadeh2020"]
    structure = verdict_counts(df, "structure").set_index("paper").loc["zaeemzadeh2020"]
    assert trained.sum() == 1 and structure["REPRODUCED"] == 1
    assert json.loads(df.to_json(orient="records"))[0]["kind"] == "structure"


# ------------------------------------------------------------------------------------- Monte Carlo rates

DRAWS = 4000
NOMINAL = 0.025  # one side of a 95 % interval
MC_ERROR = 3 * math.sqrt(NOMINAL * (1 - NOMINAL) / DRAWS)


def _samples(values_a, values_b, paired):
    a = Sample("a", [None] * len(values_a), [(i if paired else f"a{i}", v) for i, v in enumerate(values_a)])
    b = Sample("b", [None] * len(values_b), [(i if paired else f"b{i}", v) for i, v in enumerate(values_b)])
    a.worst = b.worst = math.inf
    return a, b


@pytest.mark.parametrize("n", [2, 3, 5, 10])
@pytest.mark.parametrize("paired", [True, False])
def test_false_pass_rate_for_equal_subjects_is_nominal(n, paired):
    rng = np.random.default_rng(n + 100 * paired)
    seed_effect = rng.standard_normal((DRAWS, n))  # shared by both subjects when paired
    passes = 0
    for i in range(DRAWS):
        a = rng.standard_normal(n) + (seed_effect[i] if paired else 0)
        b = rng.standard_normal(n) + (seed_effect[i] if paired else 0)
        passes += compare_less(*_samples(list(a), list(b), paired)).outcome == "PASS"
    assert passes / DRAWS <= NOMINAL + MC_ERROR, f"{passes / DRAWS:.3%} false PASS at n = {n}"


@pytest.mark.parametrize("n", [2, 3, 5, 10])
def test_false_deviates_rate_at_the_band_edge_is_nominal(n):
    rng = np.random.default_rng(n)
    floor, sigma = 0.5, 0.4
    x = floor + sigma * rng.standard_normal((DRAWS, n))  # true d exactly at the band's edge
    d, se = x.mean(axis=1), x.std(axis=1, ddof=1) / math.sqrt(n)
    u = t_quantile(n - 1) * se
    rate = np.mean([decide(di, ui, floor, n) == "DEVIATES" for di, ui in zip(d, u)])
    assert rate <= NOMINAL + MC_ERROR, f"{rate:.3%} false DEVIATES at n = {n}"


def test_numbers_and_claims_share_one_protocol_check(tmp_path):
    # stand-in architecture runs: the old claims check did not see it, so a PROXY number sat beside a
    # REPRODUCED claim on the same runs
    runs = Runs(tmp_path)
    for seed in range(3):
        runs.add("plain20", seed=seed, errors=[5.0 + 0.01 * seed])
        runs.add("preact_resnet20", seed=seed, errors=[9.0 + 0.01 * seed])
    loaded = runs.load()
    for r in loaded:
        if r.config["model"] == "plain20":
            r.config["arch"] = "convnet8"
    number = compare_one(_err_ref(5.0, runs=3), [r for r in loaded if r.config["model"] == "plain20"])
    args = {"metric": "final_test_error", "chains": [[{"model": "plain20"}, {"model": "preact_resnet20"}]]}
    claim = _eval(_claim("order_less_than", args), loaded)
    assert number["verdict"] == claim["verdict"] == "PROXY"
    assert "architecture convnet8 in place of plain20" in number["protocol_differences"]
    assert number["protocol_differences"] == claim["protocol_differences"]


def test_a_claim_over_several_data_sets_has_a_verdict_per_data_set(tmp_path):
    # Oyedotun's "PlainNet does not learn" pools MNIST, CIFAR-10 and CIFAR-100; only MNIST was run
    subjects = [{"model": "convnet164", "dataset": ds} for ds in ("mnist", "cifar10", "cifar100")]
    args = {"metric": "train_accuracy", "at_most_times_chance": 2, "subjects": subjects}
    runs = Runs(tmp_path)
    for seed in range(3):
        runs.add("convnet164", seed=seed, dataset="mnist", errors=[90.0], train_errors=[89.0 + seed])
    row = _eval(_claim("does_not_learn", args, dataset="mnist"), runs)
    assert row["per_dataset"] == "mnist: REPRODUCED; cifar10: NOT RUN; cifar100: NOT RUN"
    assert row["verdict"] == "NOT RUN"  # the overall verdict waits for every part


def test_plan_says_which_numbers_the_planned_runs_can_decide():
    from normbench.config import load_config
    from normbench.references import load_claims, load_references
    from normbench.verdicts.plan import plan_claims, plan_numbers, runs_needed

    config = load_config("config/paper.yaml")
    rows = {r["id"]: r for r in plan_numbers(config, load_references())}
    jia = rows["jia2017/table1/SGD with momentum + BN/mean"]  # 5 runs, the paper's std 0.14
    assert jia["planned_runs"] == 5 and jia["sigma_source"] == "paper's std" and jia["decidable"]
    assert jia["expected_half_width"] == pytest.approx(t_quantile(4) * 0.14 / math.sqrt(5))
    single = [r for r in rows.values() if r["planned_runs"] == 1 and r["floor"] != 5.0]
    assert single and not any(r["decidable"] for r in single)  # one run never decides
    assert runs_needed(0.25, 0.5) == 4  # t_{0.975,3} * 0.25 / 2 = 0.40 <= 0.5; n = 3 gives 0.62
    claims = {r["id"]: r for r in plan_claims(config, load_claims())}
    assert not claims["jia2017/table2_svb_bbn_improves_wrn"]["decidable"]


def test_plan_names_a_probe_the_planned_runs_would_not_record():
    """A number or claim read from a probe is not decidable when its experiment does not record that probe:
    config/paper.yaml records them all; without the Oyedotun probes the activation-range number and its
    claim say which probe is missing."""
    import copy

    from normbench.config import load_config
    from normbench.references import load_claims, load_references
    from normbench.verdicts.plan import plan_claims, plan_numbers

    config = load_config("config/paper.yaml")
    assert not any(r["missing_probe"] for r in plan_numbers(config, load_references()))
    assert not any(r["missing_probe"] for r in plan_claims(config, load_claims()))
    bare = copy.deepcopy(config)
    bare["experiments"]["oyedotun2020_table1_mnist"]["probes"]["names"] = []
    rows = {r["id"]: r for r in plan_numbers(bare, load_references())}
    row = rows["oyedotun2020/fig5/PlainNet-164, first layer (Fig. 5)/range of the units' activations"]
    assert row["missing_probe"] == "activation_dist" and not row["decidable"]
    claims = {r["id"]: r for r in plan_claims(bare, load_claims())}
    assert claims["oyedotun2020/plain_first_layer_activations_larger"]["missing_probe"] == "activation_dist"
    assert claims["oyedotun2020/resnext_beats_resnet"]["missing_probe"] == ""


def test_every_stated_recipe_key_that_differs_is_named():
    from normbench.verdicts.protocol import augment_name, recipe_differences

    cfg = {
        "batch_size": 64,
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0001},
        "augment": {"pad": 4, "flip": True},
    }
    paper = {
        "batch_size": 128,
        "optimizer": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "nesterov": None,  # silent: never a difference
        "weight_decay": 0.0005,
        "init": "orthogonal",
        "preprocess": "none",
        "augment": "pad4_crop_flip",
    }
    assert recipe_differences(cfg, paper) == [
        "batch_size 64 (paper: 128)",
        "weight_decay 0.0001 (paper: 0.0005)",
        "init he (paper: orthogonal)",
        "preprocess per_channel (paper: none)",
    ]
    assert (
        recipe_differences({**cfg, "batch_size": 128, "init": "orthogonal", "preprocess": "none"}, {}) == []
    )
    assert augment_name({"pad": 0, "flip": True}) == "flip" and augment_name({}) == "none"


def test_cited_and_unsized_augmentations_are_not_differences():
    from normbench.verdicts.protocol import recipe_differences

    cfg = {"augment": {"pad": 4, "flip": True}, "method": "ortho_init+ortho_reg"}
    assert recipe_differences(cfg, {"augment": "cited", "init": "orthogonal"}) == []
    assert recipe_differences(cfg, {"augment": "shift_flip"}) == []  # a shift of unstated size, and a flip
    assert recipe_differences({"augment": {"flip": True}}, {"augment": "shift_flip"}) == [
        "augment flip (paper: shift_flip)"
    ]


def test_paper_config_follows_every_recipe_key_the_papers_state():
    # every run of config/paper.yaml against the references it stands for: no stated recipe key differs
    # (e.g. Jia's orthogonal init and raw images, Xie's per-pixel statistics); a difference here would make
    # a paper-scale row PROXY, so it must be a decision written into the config, not an accident
    from normbench.config import load_config, run_config, run_specs
    from normbench.references import load_references
    from normbench.runs.folder import Run
    from normbench.verdicts.numbers import run_matches
    from normbench.verdicts.protocol import recipe_differences

    config = load_config("config/paper.yaml")
    runs = [Run(None, run_config(config, s), [], {}) for s in run_specs(config) if s.seed == 0]
    found = set()
    for ref in load_references():
        for r in runs:
            if run_matches(r, ref.table_key, ref.model, ref.method, ref.options, ref.optimizer, ref.dataset):
                found |= {
                    (ref.table_key, r.config["experiment"], d)
                    for d in recipe_differences(r.config, ref.recipe)
                }
    assert not found, sorted(found)


def test_a_structural_deviation_quotes_the_registrys_explanation():
    """PlainNet-164's 2.5M (Oyedotun Table 1) cannot be built from ResNet-164's 2.6M without its skips: the
    row says DEVIATES and quotes the registry's note, so a reader sees why; a REPRODUCED count quotes nothing."""
    from normbench.references import load_references
    from normbench.verdicts.numbers import compare_one

    refs = [r for r in load_references() if r.paper == "oyedotun2020" and r.metric == "params" and r.model]
    rows = [compare_one(r, []) for r in refs]
    plain = next(row for row in rows if row["row"] == "PlainNet-164")
    assert plain["verdict"] == DEVIATES and plain["kind"] == "structure"
    assert "the registry explains:" in plain["rule"] and "2.6" in plain["rule"]
    assert all("explains" not in row["rule"] for row in rows if row["verdict"] == REPRODUCED)


def test_a_cited_architecture_row_says_it_is_not_built():
    from normbench.references import load_references
    from normbench.verdicts.numbers import compare_one

    cited = [r for r in load_references() if r.metric in ("params", "depth") and r.model is None and r.value]
    assert cited
    row = compare_one(cited[0], [])
    assert row["verdict"] == NOT_RUN and "cited architecture" in row["rule"] and "None" not in row["rule"]


def test_image_folder_crops_are_named_in_the_protocol():
    from normbench.verdicts.protocol import recipe_differences

    xie = {"augment": "crop224_flip_color", "preprocess": "mean_rgb_scaled", "batch_size": 256}
    ours = {"dataset": "imagenet", "image_size": 224, "batch_size": 128, "augment": {"pad": 0, "flip": True}}
    assert sorted(recipe_differences(ours, xie)) == [
        "augment rrcrop_flip (paper: crop224_flip_color)",
        "batch_size 128 (paper: 256)",
        "preprocess per_channel (paper: mean_rgb_scaled)",
    ]
    faithful = {
        **ours,
        "batch_size": 256,
        "preprocess": "mean_rgb_scaled",
        "augment": {"pad": 0, "flip": True, "crop": "resize_random", "lighting": 0.1},
    }
    assert recipe_differences(faithful, xie) == []
    # a tensor data set never names a crop of its own: the default crop key in its config is ignored
    assert (
        recipe_differences(
            {"dataset": "cifar10", "augment": {"pad": 4, "flip": True}}, {"augment": "pad4_crop_flip"}
        )
        == []
    )


def test_a_claim_pooling_data_sets_holds_each_subject_to_its_own_recipe():
    """Oyedotun's Table I claims pool MNIST (no augmentation) with CIFAR (the cited standard one)."""
    claim = next(c for c in load_claims() if c.key == "oyedotun2020/plain_does_not_learn")
    assert claim.recipe_for("mnist")["augment"] == "none"
    assert claim.recipe_for("cifar10")["augment"] == "cited"


def test_relu_nonzero_fraction_is_evaluated_from_the_probe(tmp_path):
    """Xie footnote 3's "approximately 50%" is a number computed from the relu_nonzero probe (the last
    epoch-schedule record; an iteration-schedule record does not count): 49.6-50.4 % over three runs is
    REPRODUCED, 80 % DEVIATES, and runs without the probe leave the row undecided rather than NOT EVALUATED."""

    def add(runs, percents):
        for seed, pct in enumerate(percents):
            probes = {1: {"relu_nonzero": {"percent": pct, "nonzero": 1, "numel": 2, "calls": []}}}
            runs.add("convnet44", seed=seed, errors=[10.0], probes=probes)
        return runs.load()

    ref = _ref(
        50.0, metric="relu_nonzero_fraction", model="convnet44", qualifier="about", statistic="unstated"
    )
    row = compare_one(ref, add(Runs(tmp_path / "a"), [49.6, 50.0, 50.4]))
    assert row["verdict"] == "REPRODUCED" and row["ours_mean"] == pytest.approx(50.0), row
    assert compare_one(ref, add(Runs(tmp_path / "b"), [79.6, 80.0, 80.4]))["verdict"] == "DEVIATES"
    bare = Runs(tmp_path / "c")
    for seed in range(3):
        bare.add("convnet44", seed=seed, errors=[10.0])
    row = compare_one(ref, bare.load())
    assert row["verdict"] not in ("REPRODUCED", "DEVIATES", "NOT EVALUATED") and row["n"] == 0, row
    from conftest import epoch_records

    from normbench.runs.folder import summarize

    recs = [
        *epoch_records([1.0], [2.0]),
        {"kind": "probe", "epoch": 1, "probes": {"relu_nonzero": {"percent": 50.0}}},
        {"kind": "probe", "epoch": 2, "iteration": 77, "probes": {"relu_nonzero": {"percent": 99.0}}},
    ]
    assert summarize(recs)["relu_nonzero_fraction"] == 50.0
