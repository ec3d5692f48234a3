"""Qualitative claims: every check on hand-made runs (holds, fails, NOT RUN, INCONCLUSIVE, PROXY), run
matching, the output files, the --strict exit code, and every shipped claim on empty, smoke and paper runs."""

import json
import math
import random

import pytest
import yaml
from conftest import epoch_records

from normbench.cli.main import main
from normbench.config import load_config, run_config, run_specs
from normbench.outputs.report import build_report
from normbench.references import CHECKS, Claim, load_claims
from normbench.runs.folder import Run, append_record, load_runs, summarize
from normbench.verdicts.claims import evaluate_claim, evaluate_claims, subject_runs, write_claims
from normbench.verdicts.values import METRICS, run_value

# ------------------------------------------------------------------------------------------------ helpers


def _blocks(ratios, transition=None, stem=False):
    """grad_norm_ratio probe result: one block per ratio; ``transition`` flags, an optional RGB stem."""
    transition = transition or [False] * len(ratios)
    out = [
        {"index": i, "name": f"blocks.{i}", "transition": t, "in_shape": [16, 8, 8], "ratio": r}
        for i, (r, t) in enumerate(zip(ratios, transition))
    ]
    if stem:
        out.insert(0, {"index": -1, "name": "stem", "transition": True, "in_shape": [3, 8, 8], "ratio": 50.0})
    return out


class Runs:
    """Writes tiny run folders (config.json + metrics.jsonl) under tmp_path and loads them."""

    def __init__(self, root):
        self.root = root
        self.paths = []

    def add(
        self,
        model,
        *,
        method="none",
        seed=0,
        errors=(5.0,),
        train_errors=None,
        dataset="cifar10",
        paper_dataset=None,
        epochs=None,
        reproduces=("zaeemzadeh2020/table1",),
        diverged_at=None,
        probes=None,
        options=None,
        optimizer="sgd",
        step_seconds=0.1,
        empty=False,
        train_loss=1.0,
    ):
        train_errors = train_errors if train_errors is not None else [1.0] * len(errors)
        records = [] if empty else epoch_records(train_errors, errors, step_seconds)
        for r in records:
            r["train_loss"] = train_loss
        if diverged_at is not None:
            records = records[: diverged_at - 1]
            records.append({"kind": "diverged", "epoch": diverged_at, "iteration": 7, "reason": "nan"})
        for epoch, result in sorted((probes or {}).items()):
            records.append({"kind": "probe", "epoch": epoch, "probes": result})
        config = {
            "experiment": "e",
            "model": model,
            "method": method,
            "method_options": options or {},
            "seed": seed,
            "dataset": dataset,
            "paper_dataset": paper_dataset or dataset,
            "epochs": epochs or max(len(errors), diverged_at or 0),
            "optimizer": {"name": optimizer, "lr": 0.1},
            "reproduces": list(reproduces),
        }
        folder = self.root / f"runs{len(self.paths)}" / model / method / f"seed{seed}"
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps(config))
        (folder / "metrics.jsonl").write_text("")
        for r in records:
            append_record(folder / "metrics.jsonl", r)
        self.paths.append(folder / "metrics.jsonl")
        return self

    def many(self, model, values, key="errors", **kw):
        for seed, v in enumerate(values):
            self.add(model, seed=seed, **{key: v}, **kw)
        return self

    def load(self):
        return load_runs(self.paths)


@pytest.fixture
def runs(tmp_path):
    return Runs(tmp_path)


def _claim(check, args, table="table1", dataset="cifar10", epochs=None, n_runs=None, **kw):
    return Claim(
        paper="zaeemzadeh2020",
        id=f"test_{check}",
        table=table,
        label="Table 1",
        section="Sec. 0",
        statement="a test claim",
        check=check,
        args=args,
        dataset=dataset,
        runs=n_runs,
        epochs=epochs,
        protocol="test protocol",
        **kw,
    )


def _eval(claim, runs_obj):
    return evaluate_claim(claim, runs_obj.load() if isinstance(runs_obj, Runs) else runs_obj)


# ---------------------------------------------------------------------------------- diverges_within_epochs

DIVERGES = {"subjects": {"model": "plain164"}, "epochs": 3, "tolerance_epochs": 1}


def test_diverges_within_epochs_holds(runs):
    runs.add("plain164", seed=0, errors=[5] * 4, diverged_at=3).add(
        "plain164", seed=1, errors=[5] * 4, diverged_at=2
    )
    row = _eval(_claim("diverges_within_epochs", DIVERGES), runs)
    assert row["verdict"] == "REPRODUCED"
    assert "plain164: 2/2 runs diverged within 4 epochs (at epochs 2, 3)" in row["measured"]


def test_diverges_within_epochs_fails_when_a_run_survives(runs):
    runs.add("plain164", seed=0, errors=[5] * 4, diverged_at=3).add("plain164", seed=1, errors=[5] * 4)
    row = _eval(_claim("diverges_within_epochs", DIVERGES), runs)
    assert row["verdict"] == "DEVIATES" and "1 finished 4 epochs without diverging" in row["measured"]
    late = Runs(runs.root / "late").add("plain164", errors=[5] * 8, diverged_at=7)
    assert _eval(_claim("diverges_within_epochs", DIVERGES), late)["verdict"] == "DEVIATES"
    # min_fraction 0.5: one survivor of two is allowed
    half = _claim("diverges_within_epochs", {**DIVERGES, "min_fraction": 0.5})
    assert _eval(half, runs)["verdict"] == "REPRODUCED"


def test_diverges_within_epochs_inconclusive_not_run_and_proxy(runs):
    short = Runs(runs.root / "short").add("plain164", errors=[5, 5])  # 2 epochs < 4, no divergence
    row = _eval(_claim("diverges_within_epochs", DIVERGES), short)
    assert row["verdict"] == "INCONCLUSIVE" and "stopped before epoch 4" in row["measured"]
    row = _eval(_claim("diverges_within_epochs", DIVERGES), [])
    assert row["verdict"] == "NOT RUN" and row["outcome"] == "" and "not run: plain164" in row["measured"]
    runs.add("plain164", errors=[5] * 4, diverged_at=2, dataset="digits", paper_dataset="cifar10")
    row = _eval(_claim("diverges_within_epochs", DIVERGES, epochs=100), runs)
    assert row["verdict"] == "PROXY" and row["holds_on_proxy"] is True and row["outcome"] == "PASS"
    assert row["protocol_differences"] == "data set digits (paper: cifar10); 4 epochs (paper: 100)"


# ---------------------------------------------------------------------------------- does_not_learn / learns

NOT_LEARN = {
    "metric": "train_accuracy",
    "at_most_times_chance": 2,
    "subjects": [{"model": "convnet164"}, {"model": "convnet164", "dataset": "cifar100"}],
}


def test_does_not_learn_holds_with_chance_per_data_set(runs):
    runs.add("convnet164", seed=0, train_errors=[90.0], errors=[90.0])  # 10% accuracy on cifar10 (<= 20)
    runs.add("convnet164", seed=1, errors=[5] * 3, diverged_at=2)  # diverged: does not learn
    runs.add("convnet164", seed=0, train_errors=[98.5], errors=[99.0], dataset="cifar100")  # 1.5% <= 2
    row = _eval(_claim("does_not_learn", NOT_LEARN), runs)
    assert row["verdict"] == "REPRODUCED", row["measured"]
    assert "2/2 runs do not learn" in row["measured"] and "diverged at epoch 2" in row["measured"]


def test_does_not_learn_fails_inconclusive_not_run(runs):
    runs.add("convnet164", train_errors=[90.0], errors=[90.0])
    runs.add("convnet164", train_errors=[97.0], errors=[99.0], dataset="cifar100")  # 3% > 2% on cifar100
    assert _eval(_claim("does_not_learn", NOT_LEARN), runs)["verdict"] == "DEVIATES"
    absolute = _claim(
        "does_not_learn", {"metric": "train_accuracy", "at_most": 5, "subjects": NOT_LEARN["subjects"]}
    )
    assert _eval(absolute, runs)["verdict"] == "DEVIATES"  # 10% > 5%
    pending = (
        Runs(runs.root / "p").add("convnet164", empty=True).add("convnet164", empty=True, dataset="cifar100")
    )
    assert _eval(_claim("does_not_learn", NOT_LEARN), pending)["verdict"] == "INCONCLUSIVE"
    only10 = Runs(runs.root / "o").add("convnet164", train_errors=[90.0], errors=[90.0])
    row = _eval(_claim("does_not_learn", NOT_LEARN), only10)  # no cifar100 run
    assert row["verdict"] == "NOT RUN" and "not run: convnet164 on cifar100" in row["measured"]


LEARNS = {"metric": "train_accuracy", "at_least": 95, "subjects": [{"model": "resnet164"}]}


def test_learns(runs):
    runs.many("resnet164", [[2.0], [3.0]], key="train_errors", errors=[8.0])
    assert _eval(_claim("learns", LEARNS), runs)["verdict"] == "REPRODUCED"
    runs.add("resnet164", seed=2, errors=[5] * 3, diverged_at=2)
    row = _eval(_claim("learns", LEARNS), runs)
    assert row["verdict"] == "DEVIATES" and "2/3 runs learn" in row["measured"]
    low = Runs(runs.root / "low").add("resnet164", train_errors=[10.0], errors=[12.0])
    assert _eval(_claim("learns", LEARNS), low)["verdict"] == "DEVIATES"
    assert _eval(_claim("learns", LEARNS), [])["verdict"] == "NOT RUN"
    two = Runs(runs.root / "x").many("resnet164", [[2.0], [3.0]], key="train_errors")
    row = _eval(_claim("learns", LEARNS, n_runs=5), two)
    assert (
        row["verdict"] == "PROXY"
        and row["holds_on_proxy"] is True
        and "2 runs (paper: 5)" in row["protocol_differences"]
    )


# -------------------------------------------------------------------------------------------- less_than

A274 = {"model": "procresnet274", "method": "procrustes"}


@pytest.mark.parametrize(
    ("errors", "verdict"),
    [
        ([4.0, 4.1, 4.2], "REPRODUCED"),
        ([5.0, 5.1, 5.2], "DEVIATES"),
        ([3.0, 6.0], "INCONCLUSIVE"),
        ([4.0], "INCONCLUSIVE"),
    ],
)
def test_less_than_value(runs, errors, verdict):
    runs.many("procresnet274", [[e] for e in errors], method="procrustes")
    row = _eval(_claim("less_than", {"metric": "final_test_error", "a": A274, "value": 4.62}), runs)
    assert row["verdict"] == verdict, row["measured"]
    if len(errors) == 1:
        assert "point comparison holds" in row["measured"]


def test_less_than_subjects_and_not_run(runs):
    args = {"metric": "final_test_error", "a": [{"model": "a1"}, {"model": "a2"}], "b": {"model": "b"}}
    runs.many("a1", [[1.0], [1.1]]).many("a2", [[2.0], [2.1]]).many("b", [[3.0], [3.1]])
    assert _eval(_claim("less_than", args), runs)["verdict"] == "REPRODUCED"
    row = _eval(_claim("less_than", {**args, "b": {"model": "c"}}), runs)
    assert row["verdict"] == "NOT RUN" and "not run: c" in row["measured"]


# ------------------------------------------------------------------------------------ order_less_than

CHAIN = {
    "metric": "gap_mean",
    "chains": [
        [
            {"model": "procresnet22", "method": "procrustes"},
            {"model": "preact_resnet20"},
            {"model": "plain20"},
        ]
    ],
}


def _gap_runs(runs, gaps, **kw):
    """gap_mean = test - train error with one epoch: errors = 10 + gap, train 10."""
    for (model, method), values in gaps.items():
        for seed, g in enumerate(values):
            runs.add(model, method=method, seed=seed, train_errors=[10.0], errors=[10.0 + g], **kw)
    return runs


def test_order_less_than_holds_paired(runs):
    _gap_runs(
        runs,
        {
            ("procresnet22", "procrustes"): [1, 1.2, 1.1],
            ("preact_resnet20", "none"): [3, 3.3, 3.1],
            ("plain20", "none"): [6, 6.2, 6.1],
        },
    )
    row = _eval(_claim("order_less_than", CHAIN), runs)
    assert row["verdict"] == "REPRODUCED" and row["measured"].count("(95 % t, 2 df, paired)") == 2
    comparisons = json.loads(row["comparisons"])
    assert [c["outcome"] for c in comparisons] == ["PASS", "PASS"]


def test_order_less_than_fails_and_inconclusive(runs):
    _gap_runs(
        runs,
        {
            ("procresnet22", "procrustes"): [5, 5.2],
            ("preact_resnet20", "none"): [3, 3.3],
            ("plain20", "none"): [6, 6.2],
        },
    )
    row = _eval(_claim("order_less_than", CHAIN), runs)
    assert row["verdict"] == "DEVIATES"
    assert [c["outcome"] for c in json.loads(row["comparisons"])] == ["FAIL", "PASS"]
    wide = _gap_runs(
        Runs(runs.root / "w"),
        {
            ("procresnet22", "procrustes"): [1, 5],
            ("preact_resnet20", "none"): [3, 3.3],
            ("plain20", "none"): [6, 6.2],
        },
    )
    assert _eval(_claim("order_less_than", CHAIN), wide)["verdict"] == "INCONCLUSIVE"


def test_order_less_than_unpaired_when_seeds_differ(runs):
    runs.add("a", seed=0, errors=[1.0]).add("a", seed=1, errors=[1.2])
    runs.add("b", seed=5, errors=[3.0]).add("b", seed=6, errors=[3.1])
    row = _eval(
        _claim(
            "order_less_than", {"metric": "final_test_error", "chains": [[{"model": "a"}, {"model": "b"}]]}
        ),
        runs,
    )
    assert row["verdict"] == "REPRODUCED" and "df, unpaired)" in row["measured"]


def test_order_less_than_not_run_still_measures_the_rest(runs):
    _gap_runs(runs, {("preact_resnet20", "none"): [3, 3.3], ("plain20", "none"): [6, 6.2]})
    row = _eval(_claim("order_less_than", CHAIN), runs)
    assert row["verdict"] == "NOT RUN" and row["outcome"] == ""
    assert "preact_resnet20" in row["measured"] and "→ PASS" in row["measured"]
    assert "not run: procresnet22 procrustes" in row["measured"]


def test_order_less_than_proxy(runs):
    _gap_runs(
        runs,
        {
            ("procresnet22", "procrustes"): [5, 5.2],
            ("preact_resnet20", "none"): [3, 3.3],
            ("plain20", "none"): [6, 6.2],
        },
        dataset="digits",
        paper_dataset="cifar10",
    )
    row = _eval(_claim("order_less_than", CHAIN, n_runs=10), runs)
    assert row["verdict"] == "PROXY" and row["holds_on_proxy"] is False and row["outcome"] == "FAIL"
    assert "2 runs (paper: 10)" in row["protocol_differences"]


def test_order_with_diverged_side(runs):
    args = {"metric": "final_test_error", "chains": [[{"model": "resnet"}, {"model": "plain"}]]}
    runs.many("resnet", [[5.0], [5.5]])
    runs.add("plain", seed=0, errors=[9, 9], diverged_at=2).add("plain", seed=1, errors=[9, 9], diverged_at=1)
    row = _eval(_claim("order_less_than", args), runs)
    assert row["verdict"] == "REPRODUCED" and "every run of plain diverged" in row["measured"]
    swapped = {"metric": "final_test_error", "chains": [[{"model": "plain"}, {"model": "resnet"}]]}
    assert _eval(_claim("order_less_than", swapped), runs)["verdict"] == "DEVIATES"
    # accuracies: the diverged side has the lowest accuracy
    acc = {"metric": "test_accuracy", "chains": [[{"model": "plain"}, {"model": "resnet"}]]}
    assert _eval(_claim("order_less_than", acc), runs)["verdict"] == "REPRODUCED"
    # one diverged run out of three: the finished ones are compared, and the diverged one is counted
    runs.add("plain", seed=2, errors=[9.0]).add("plain", seed=3, errors=[9.2])
    row = _eval(_claim("order_less_than", args), runs)
    assert row["verdict"] == "REPRODUCED" and "2 diverged" in row["measured"]


def test_matching_options_optimizer_and_data_set(runs):
    svb = {"model": "convnet20", "method": "svb", "options": {"svb": {"eps": 0.05}}}
    runs.add("convnet20", method="svb", options={"svb": {"eps": 0.05}}, reproduces=["jia2017/fig2"])
    runs.add("convnet20", method="svb", options={"svb": {"eps": 0.5}}, reproduces=["jia2017/fig2"])
    runs.add("convnet20", method="svb", reproduces=["jia2017/fig2"])  # default eps 0.5
    runs.add("convnet20", method="svb", options={"svb": {"eps": 0.05}}, reproduces=["jia2017/fig1"])
    loaded = runs.load()
    assert len(subject_runs(svb, loaded, "jia2017/fig2", "cifar10")) == 1
    default = subject_runs({"model": "convnet20", "method": "svb"}, loaded, "jia2017/fig2", "cifar10")
    assert len(default) == 2  # eps 0.5 given explicitly or by default
    bbn = Runs(runs.root / "bbn").add("convnet20", method="svb+bbn", options={"svb": {"eps": 0.05}})
    both = {"model": "convnet20", "method": "svb+bbn", "options": {"svb": {"eps": 0.05}, "bbn": {"eps": 1.0}}}
    assert len(_match(both, bbn)) == 1  # bbn eps 1.0 is the default the run left unset
    # modulation without options = the default n_iters, not the 'always' runs
    mod = Runs(runs.root / "mod")
    mod.add("convnet110", method="ortho_init+ortho_reg+modulation", options={"modulation": {"n_iters": 2000}})
    mod.add(
        "convnet110", method="ortho_init+ortho_reg+modulation", options={"modulation": {"n_iters": 10**9}}
    )
    got = subject_runs(
        {"model": "convnet110", "method": "ortho_init+ortho_reg+modulation"},
        mod.load(),
        "zaeemzadeh2020/table1",
        "cifar10",
    )
    assert [r.config["method_options"] for r in got] == [{"modulation": {"n_iters": 2000}}]
    # optimizer: named -> must match; unnamed -> any
    opt = Runs(runs.root / "opt").add("convnet44", optimizer="adam").add("convnet44", optimizer="sgd", seed=1)
    assert len(_match({"model": "convnet44", "optimizer": "adam"}, opt)) == 1
    assert len(_match({"model": "convnet44"}, opt)) == 2
    # data set: the subject's (else the protocol's), against the data set a run stands for (paper_dataset)
    ds = Runs(runs.root / "ds").add("wrn", dataset="cifar10").add("wrn", dataset="cifar100")
    ds.add("wrn", dataset="digits", paper_dataset="cifar10")
    assert [r.config["dataset"] for r in _match({"model": "wrn", "dataset": "cifar100"}, ds)] == ["cifar100"]
    assert [r.config["dataset"] for r in _match({"model": "wrn"}, ds)] == ["cifar10", "digits"]
    assert _match({"model": "wrn", "dataset": "mnist"}, ds) == []


def _match(subject, runs_obj, table_key="zaeemzadeh2020/table1", dataset="cifar10"):
    return subject_runs(subject, runs_obj.load(), table_key, dataset)


# -------------------------------------------------------------------------------- approximately_equal

APPROX = {"metric": "final_test_error", "tolerance": 0.5, "pairs": [[{"model": "a"}, {"model": "b"}]]}


@pytest.mark.parametrize(
    ("a", "b", "verdict"),
    [
        ([5.0, 5.1, 5.2], [5.05, 5.1, 5.2], "REPRODUCED"),
        ([5.0, 5.1], [8.0, 8.1], "DEVIATES"),
        ([4.0, 6.0], [5.0, 5.1], "INCONCLUSIVE"),
        ([5.0], [5.0], "INCONCLUSIVE"),
    ],
)
def test_approximately_equal(runs, a, b, verdict):
    runs.many("a", [[v] for v in a]).many("b", [[v] for v in b])
    assert _eval(_claim("approximately_equal", APPROX), runs)["verdict"] == verdict


def test_approximately_equal_not_run_and_proxy(runs):
    runs.many("a", [[5.0], [5.1]], dataset="digits", paper_dataset="cifar10")
    assert _eval(_claim("approximately_equal", APPROX), runs)["verdict"] == "NOT RUN"
    runs.many("b", [[5.0], [5.1]], dataset="digits", paper_dataset="cifar10")
    row = _eval(_claim("approximately_equal", APPROX), runs)
    assert row["verdict"] == "PROXY" and row["holds_on_proxy"] is True


# ------------------------------------------------------------------------------------------ best_among

BEST = {
    "metric": "test_accuracy",
    "direction": "max",
    "best": {"model": "convnet44", "method": "ortho_init+ortho_reg", "optimizer": "sgd"},
    "others": [{"model": "convnet44", "optimizer": "adam"}, {"model": "convnet44", "optimizer": "sgd"}],
}


def test_best_among(runs):
    # three seeds a side: with two, t at 1 degree of freedom (12.7) makes every paired interval cover 0
    runs.many("convnet44", [[10.0], [9.5], [10.2]], method="ortho_init+ortho_reg")  # 90, 90.5, 89.8 %
    runs.many("convnet44", [[20.0], [19.0], [19.6]], optimizer="adam")
    runs.many("convnet44", [[15.0], [15.5], [15.1]], optimizer="sgd")
    row = _eval(_claim("best_among", BEST), runs)
    assert row["verdict"] == "REPRODUCED" and len(json.loads(row["comparisons"])) == 2
    minimum = {**BEST, "metric": "final_test_error", "direction": "min"}
    assert _eval(_claim("best_among", minimum), runs)["verdict"] == "REPRODUCED"
    beaten = Runs(runs.root / "b")
    beaten.many("convnet44", [[10.0], [9.5], [10.2]], method="ortho_init+ortho_reg")
    beaten.many("convnet44", [[5.0], [5.5], [5.1]], optimizer="adam").many(
        "convnet44", [[15.0], [15.5], [15.1]], optimizer="sgd"
    )
    assert _eval(_claim("best_among", BEST), beaten)["verdict"] == "DEVIATES"
    assert _eval(_claim("best_among", BEST), [])["verdict"] == "NOT RUN"


# ----------------------------------------------------------------------------- ratio_concentrated_near_one

CONC = {
    "metric": "grad_norm_ratio",
    "blocks": "non_transition",
    "epochs": [1, 2],
    "band": [0.8, 1.25],
    "fraction": 0.9,
    "subjects": [{"model": "preact_resnet20"}],
}


def _ratio_probes(per_epoch, epochs=(0, 1, 2), init=None, transition=None):
    """grad_norm_ratio probes: epoch 0 (``init`` ratios) and later epochs with ``per_epoch`` ratios."""
    out = {}
    for e in epochs:
        ratios = init if (e == 0 and init is not None) else per_epoch
        out[e] = {"grad_norm_ratio": _blocks(ratios, transition)}
    return out


def test_ratio_concentrated_near_one(runs):
    # non-transition ratios near 1 after epoch 0; the wild transition block and epoch-0 values do not count
    probes = _ratio_probes([1.0, 1.1, 9.0], init=[9.0, 9.0, 9.0], transition=[False, False, True])
    runs.add("preact_resnet20", errors=[5, 5], probes=probes).add(
        "preact_resnet20", seed=1, errors=[5, 5], probes=probes
    )
    row = _eval(_claim("ratio_concentrated_near_one", CONC), runs)
    assert row["verdict"] == "REPRODUCED" and "100.0% of 8 points (2 runs)" in row["measured"]
    bad = Runs(runs.root / "bad").add("preact_resnet20", errors=[5, 5], probes=_ratio_probes([1.0, 3.0]))
    row = _eval(_claim("ratio_concentrated_near_one", CONC), bad)
    assert row["verdict"] == "DEVIATES" and "50.0% of 4 points" in row["measured"]
    none = Runs(runs.root / "none").add("preact_resnet20", errors=[5, 5])
    row = _eval(_claim("ratio_concentrated_near_one", CONC), none)
    assert row["verdict"] == "INCONCLUSIVE" and "not recorded" in row["measured"]
    assert _eval(_claim("ratio_concentrated_near_one", CONC), [])["verdict"] == "NOT RUN"
    proxy = _eval(_claim("ratio_concentrated_near_one", CONC, epochs=100), runs)
    assert proxy["verdict"] == "PROXY" and proxy["holds_on_proxy"] is True


# ------------------------------------------------------------------------------------------ closer_to_one

CLOSER = {
    "metric": "grad_norm_ratio",
    "blocks": "transition_except_stem",
    "epochs": [1, 2],
    "pairs": [[{"model": "procresnet22", "method": "procrustes"}, {"model": "preact_resnet20"}]],
}


def _closer_runs(root, a_ratio, b_ratio, seeds=(0, 1)):
    runs = Runs(root)
    for seed in seeds:
        for model, method, r in (
            ("procresnet22", "procrustes", a_ratio),
            ("preact_resnet20", "none", b_ratio),
        ):
            probes = {
                e: {"grad_norm_ratio": _blocks([r + 0.01 * seed, 1.0], [True, False], stem=True)}
                for e in (1, 2)
            }
            runs.add(model, method=method, seed=seed, errors=[5, 5], probes=probes)
    return runs


def test_closer_to_one(tmp_path):
    # the stem (ratio 50) is left out by transition_except_stem, the non-transition block by 'transition'
    row = _eval(_claim("closer_to_one", CLOSER), _closer_runs(tmp_path / "a", 1.05, 3.0))
    assert row["verdict"] == "REPRODUCED", row["measured"]
    assert (
        _eval(_claim("closer_to_one", CLOSER), _closer_runs(tmp_path / "b", 3.0, 1.05))["verdict"]
        == "DEVIATES"
    )
    # ratio 0.5 and 2 are equally far from 1 on the log scale
    row = _eval(_claim("closer_to_one", CLOSER), _closer_runs(tmp_path / "c", 0.5, 2.0))
    assert row["verdict"] == "INCONCLUSIVE"
    one = _eval(_claim("closer_to_one", CLOSER), _closer_runs(tmp_path / "d", 1.05, 3.0, seeds=(0,)))
    assert one["verdict"] == "INCONCLUSIVE" and "point comparison holds" in one["measured"]
    assert _eval(_claim("closer_to_one", CLOSER), [])["verdict"] == "NOT RUN"


def test_closer_to_one_singular_values(runs):
    args = {
        "metric": "weight_singular_values",
        "pairs": [[{"model": "convnet38", "method": "svb"}, {"model": "convnet38"}]],
    }
    for seed in (0, 1):
        svb = {160: {"singular_values": [{"name": "c", "singular_values": [1.1, 1.0, 0.95 - 0.01 * seed]}]}}
        sgd = {160: {"singular_values": [{"name": "c", "singular_values": [5.0, 1.0, 0.1 + 0.01 * seed]}]}}
        runs.add("convnet38", method="svb", seed=seed, probes=svb).add("convnet38", seed=seed, probes=sgd)
    assert _eval(_claim("closer_to_one", args), runs)["verdict"] == "REPRODUCED"


# ------------------------------------------------------------------------------------ monotone_with_depth


def test_monotone_with_depth_spread(runs):
    args = {
        "metric": "grad_norm_ratio",
        "aggregate": "spread_log",
        "blocks": "all",
        "direction": "increasing",
        "series": [[{"model": "plain20"}, {"model": "plain83"}, {"model": "plain164"}]],
    }
    spreads = {"plain20": [1.0, 1.1], "plain83": [0.5, 2.0], "plain164": [0.1, 10.0]}
    for model, ratios in spreads.items():
        for seed in (0, 1):
            probes = {1: {"grad_norm_ratio": _blocks([r * (1 + 0.01 * seed) for r in ratios])}}
            # plain164 diverged at epoch 2: it contributes the points it recorded
            runs.add(
                model, seed=seed, errors=[5, 5], probes=probes, diverged_at=2 if model == "plain164" else None
            )
    row = _eval(_claim("monotone_with_depth", args), runs)
    assert row["verdict"] == "REPRODUCED", row["measured"]
    assert (
        _eval(_claim("monotone_with_depth", {**args, "direction": "decreasing"}), runs)["verdict"]
        == "DEVIATES"
    )


def test_monotone_with_depth_train_error(runs):
    args = {
        "metric": "final_train_error",
        "aggregate": "mean",
        "direction": "decreasing",
        "series": [[{"model": "r20"}, {"model": "r83"}]],
    }
    runs.many("r20", [[3.0], [3.2]], key="train_errors").many("r83", [[1.0], [1.1]], key="train_errors")
    assert _eval(_claim("monotone_with_depth", args), runs)["verdict"] == "REPRODUCED"
    assert (
        _eval(_claim("monotone_with_depth", {**args, "direction": "increasing"}), runs)["verdict"]
        == "DEVIATES"
    )
    assert (
        _eval(
            _claim("monotone_with_depth", {**args, "series": [[{"model": "r20"}, {"model": "r164"}]]}), runs
        )["verdict"]
        == "NOT RUN"
    )


# --------------------------------------------------------------------------------------------- all_finite

FINITE = {"metric": "hidden_condition_number", "subjects": [{"model": "resnet164"}]}


def _hidden(kappas):
    return {"hidden_condition": [{"index": i, "name": f"l{i}", "kappa": k} for i, k in enumerate(kappas)]}


def test_all_finite(runs):
    # the last probe (the trained model) counts; an earlier infinite value does not
    runs.add("resnet164", probes={0: _hidden(["inf", 2.0]), 200: _hidden([3.0, 2.0])})
    runs.add("resnet164", seed=1, probes={200: _hidden([3.5, 2.5])})
    row = _eval(_claim("all_finite", FINITE), runs)
    assert row["verdict"] == "REPRODUCED" and "0/4 layer values not finite" in row["measured"]
    runs.add("resnet164", seed=2, probes={200: _hidden(["inf", 2.5])})
    assert _eval(_claim("all_finite", FINITE), runs)["verdict"] == "DEVIATES"
    none = Runs(runs.root / "n").add("resnet164")
    assert _eval(_claim("all_finite", FINITE), none)["verdict"] == "INCONCLUSIVE"
    assert _eval(_claim("all_finite", FINITE), [])["verdict"] == "NOT RUN"


def _gammas(*mins):
    return {
        "bn_gamma": [
            {"name": f"bn{i}", "n": 4, "min": m, "max": 1.5, "nonpositive": int(m <= 0)}
            for i, m in enumerate(mins)
        ]
    }


def test_all_positive_reads_every_probe_record(runs):
    """Jia's gammas "keep positive during the process of network training": every record counts, so one
    layer at zero after epoch 1 fails the claim even when it is positive again at the end; a NaN is not
    positive; runs without the probe leave it undecided."""
    claim = next(c for c in load_claims() if c.id == "bn_gammas_stay_positive")
    methods = ("none", "svb", "bbn", "svb+bbn")

    def add(root, late_min):
        r = Runs(root)
        for method in methods:
            for seed in range(2):
                probes = {0: _gammas(1.0, 1.0), 1: _gammas(0.4, late_min), 2: _gammas(0.5, 0.9)}
                r.add(
                    "preact_resnet68", method=method, seed=seed, probes=probes, reproduces=("jia2017/table1",)
                )
        return r

    row = _eval(claim, add(runs.root / "a", 0.2))
    assert row["outcome"] == "PASS" and "0/12 layer values not positive over 2 runs" in row["measured"], row[
        "measured"
    ]
    assert _eval(claim, add(runs.root / "b", 0.0))["outcome"] == "FAIL"
    assert _eval(claim, add(runs.root / "c", float("nan")))["outcome"] == "FAIL"
    bare = Runs(runs.root / "d")
    for method in methods:
        bare.add("preact_resnet68", method=method, reproduces=("jia2017/table1",))
    assert _eval(claim, bare)["outcome"] == "INCONCLUSIVE"


def test_infinite_medians_are_ordered_by_runs(runs):
    args = {
        "metric": "hidden_condition_number",
        "aggregate": "median_over_layers",
        "chains": [[{"model": "resnext"}, {"model": "plain"}]],
    }
    for seed in (0, 1):
        runs.add("resnext", seed=seed, probes={9: _hidden([2.0, 3.0 + seed, 4.0])})
        runs.add("plain", seed=seed, probes={9: _hidden(["inf", "inf", 4.0])})
    row = _eval(_claim("order_less_than", args), runs)
    assert row["verdict"] == "REPRODUCED" and "infinite values" in row["measured"]


# -------------------------------------------------------------------------------------- per-run metrics


def test_probe_metrics_and_aggregates(runs):
    probes = {
        0: {"weight_correlation": {"mean": 0.5}, "backward_moments": {"ratio_bottom_to_top": 100.0}},
        1: {"weight_correlation": {"mean": 0.1}, "backward_moments": {"ratio_bottom_to_top": 0.2}},
        2: {
            "weight_correlation": {"mean": 0.01},
            "backward_moments": {"ratio_bottom_to_top": 0.4},
            "weight_condition": [{"kappa": 1.0}, {"kappa": 3.0}, {"kappa": 100.0}],
            "activation_dist": [{"layer_index": 163, "range": 6.0}, {"layer_index": 0, "range": 1.7e6}],
        },
    }
    run = runs.add("m", errors=[5, 7], train_errors=[1, 2], probes=probes).load()[0]
    assert run_value(run, "weight_correlation") == 0.01  # default 'final'
    assert run_value(run, "error_moment_ratio", "median") == pytest.approx(0.3)  # epoch 0 left out
    assert run_value(run, "weight_condition_number", "median_over_layers") == 3.0
    assert run_value(run, "first_layer_activation_range") == 1.7e6
    assert run_value(run, "test_accuracy") == 93.0 and run_value(run, "train_accuracy") == 98.0
    assert run_value(run, "gap_fluctuation") == pytest.approx(5.0 - 4.5)
    with pytest.raises(KeyError):
        run_value(run, "no_such_metric")


def test_train_time_overhead_against_the_plain_network(runs):
    args = {
        "metric": "train_time_overhead",
        "chains": [
            [
                {"model": "procresnet166", "method": "procrustes"},
                {
                    "model": "procresnet166",
                    "method": "procrustes",
                    "options": {"procrustes": {"path": "svd"}},
                },
            ]
        ],
    }
    table = {"reproduces": ["zaeemzadeh2020/text_overhead"]}
    for seed in (0, 1):
        runs.add("procresnet166", method="procrustes", seed=seed, step_seconds=0.107 + 0.001 * seed, **table)
        runs.add(
            "procresnet166",
            method="procrustes",
            seed=seed,
            step_seconds=0.153 + 0.001 * seed,
            options={"procrustes": {"path": "svd"}},
            **table,
        )
    claim = _claim("order_less_than", args, table="text_overhead")
    row = _eval(claim, runs)
    assert row["verdict"] == "NOT RUN" and "not run: procresnet166" in row["measured"]  # no baseline
    for seed in (0, 1):
        runs.add("procresnet166", seed=seed, step_seconds=0.1, **table)
    row = _eval(claim, runs)
    assert row["verdict"] == "REPRODUCED", row["measured"]
    assert "procresnet166 procrustes 7.5 ± 0.707" in row["measured"]


def test_config_only_claim_is_not_run(runs):
    runs.many("imagenet_net", [[20.0], [21.0]])
    claim = _claim(
        "less_than",
        {"metric": "final_test_error", "a": {"model": "imagenet_net"}, "value": 30},
        dataset="imagenet",
        config_only=True,
    )
    row = _eval(claim, runs)
    assert row["verdict"] == "NOT RUN" and "configuration only" in row["measured"]


# ----------------------------------------------------------------------------------- files, CLI, shipped


def test_write_claims(tmp_path, runs):
    runs.many("a", [[1.0], [1.1]]).many("b", [[3.0], [3.1]])
    claims = [
        _claim(
            "order_less_than", {"metric": "final_test_error", "chains": [[{"model": "a"}, {"model": "b"}]]}
        ),
        _claim("learns", LEARNS),
    ]
    df = evaluate_claims(claims, runs.load())
    paths = write_claims(df, tmp_path / "out")
    assert [p.name for p in paths] == ["claims.csv", "claims.md", "claims.json"]
    records = json.loads((tmp_path / "out" / "claims.json").read_text())
    assert [r["verdict"] for r in records] == ["REPRODUCED", "NOT RUN"]
    assert records[0]["comparisons"][0]["outcome"] == "PASS"
    md = (tmp_path / "out" / "claims.md").read_text()
    assert "| zaeemzadeh2020 |" in md and "REPRODUCED" in md
    empty = write_claims(evaluate_claims([], []), tmp_path / "empty")
    assert all(p.exists() for p in empty)


def _claims_file(tmp_path, chain_dataset="cifar10"):
    path = tmp_path / "zaeemzadeh2020.yaml"
    doc = {
        "paper": "zaeemzadeh2020",
        "title": "t",
        "source": "s",
        "protocols": {
            "table1": {
                "label": "Table 1",
                "dataset": chain_dataset,
                "epochs": 1,
                "runs": 2,
                "description": "d",
            }
        },
        "entries": [
            {
                "table": "table1",
                "row": "r",
                "column": "c",
                "model": "a",
                "metric": "final_test_error",
                "units": "%",
                "statistic": "mean",
                "value": 1.05,
            }
        ],
        "claims": [
            {
                "id": "a_below_b",
                "table": "table1",
                "section": "s",
                "statement": "a < b",
                "check": "order_less_than",
                "args": {"metric": "final_test_error", "chains": [[{"model": "a"}, {"model": "b"}]]},
            }
        ],
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def test_cli_strict_fails_on_a_deviating_claim(tmp_path):
    ref = _claims_file(tmp_path)
    args = ["compare", "--references", str(ref), "--strict", "--out-dir"]
    good = Runs(tmp_path / "good").many("a", [[1.0], [1.1]]).many("b", [[3.0], [3.1]])
    bad = (
        Runs(tmp_path / "bad").many("a", [[1.0], [1.1]]).many("b", [[0.5], [0.6]])
    )  # the number holds, the claim fails
    assert main([*args, str(tmp_path / "o1"), *map(str, good.paths)]) == 0
    assert main([*args, str(tmp_path / "o2"), *map(str, bad.paths)]) == 1
    for ext in ("csv", "md", "json"):
        assert (tmp_path / "o2" / f"claims.{ext}").exists()
    assert json.loads((tmp_path / "o2" / "claims.json").read_text())[0]["verdict"] == "DEVIATES"
    proxy = (
        Runs(tmp_path / "proxy")
        .many("a", [[1.0], [1.1]], dataset="digits", paper_dataset="cifar10")
        .many("b", [[0.5], [0.6]], dataset="digits", paper_dataset="cifar10")
    )
    assert main([*args, str(tmp_path / "o3"), *map(str, proxy.paths)]) == 0  # PROXY never fails --strict
    assert (
        main(["compare", "--references", str(ref), "--out-dir", str(tmp_path / "o4"), *map(str, bad.paths)])
        == 0
    )


def test_report_shows_claims_per_paper(tmp_path):
    ref = _claims_file(tmp_path)
    bad = Runs(tmp_path / "bad").many("a", [[1.0], [1.1]]).many("b", [[0.5], [0.6]])
    out = tmp_path / "results"
    assert main(["compare", "--references", str(ref), "--out-dir", str(out), *map(str, bad.paths)]) == 0
    html = build_report(out, tmp_path / "report.html", title="t").read_text()
    assert "<h3>Claims (1 of 1 evaluated)</h3>" in html and '<tr class="DEVIATES"><td>a &lt; b</td>' in html
    assert "<td>zaeemzadeh2020</td><td>claims</td><td>0</td><td>1</td>" in html  # summary: 1 claim DEVIATES
    (out / "claims.csv").unlink()  # a results folder from before claims still renders
    assert (
        "Claims" not in build_report(out, tmp_path / "r2.html", title="t").read_text().split("<h2>Summary")[1]
    )


def test_every_shipped_claim_has_a_check_and_known_metric():
    claims = load_claims()
    assert claims and {c.check for c in claims} <= set(CHECKS)
    assert {c.args["metric"] for c in claims if "metric" in c.args} <= set(METRICS)


def test_shipped_claims_without_runs_are_all_not_run():
    df = evaluate_claims(load_claims(), [])
    assert len(df) == len(load_claims()) and set(df["verdict"]) == {"NOT RUN"}
    assert df["id"].is_unique


def _synthetic_records(rng, cfg):
    """Two epochs of plausible numbers and every probe the claims read."""
    records = epoch_records([rng.uniform(1, 5), rng.uniform(1, 5)], [rng.uniform(5, 10), rng.uniform(5, 10)])
    for epoch in (0, 1, 2):
        records.append(
            {
                "kind": "probe",
                "epoch": epoch,
                "probes": {
                    "grad_norm_ratio": _blocks(
                        [rng.uniform(0.5, 2) for _ in range(4)], [True, False, True, False]
                    ),
                    "weight_correlation": {"mean": rng.uniform(0, 0.1)},
                    "backward_moments": {"ratio_bottom_to_top": rng.uniform(0.1, 2)},
                    "singular_values": [{"singular_values": [rng.uniform(0.5, 2) for _ in range(3)]}],
                    "weight_condition": [{"kappa": rng.uniform(1, 10)} for _ in range(3)],
                    "hidden_condition": [{"kappa": rng.uniform(1, 10)} for _ in range(3)],
                    "activation_dist": [{"layer_index": 0, "range": rng.uniform(1, 10)}],
                },
            }
        )
    return records


@pytest.mark.parametrize("config_file", ["config/config.yaml", "config/paper.yaml"])
def test_shipped_claims_on_the_pipelines_runs(repo, config_file):
    """Every claim evaluates on (synthetic logs of) every run the smoke and paper configurations plan."""
    config = load_config(repo / config_file)
    rng = random.Random(0)
    runs = []
    for spec in run_specs(config):
        cfg = run_config(config, spec)
        records = _synthetic_records(rng, cfg)
        runs.append(Run(repo, cfg, records, summarize(records)))
    df = evaluate_claims(load_claims(), runs)
    assert len(df) == len(load_claims())
    assert set(df["verdict"]) <= {"NOT RUN", "PROXY", "REPRODUCED", "DEVIATES", "INCONCLUSIVE"}
    if config_file == "config/config.yaml":
        assert (df["verdict"] != "NOT RUN").sum() == 0  # smoke runs cover no claim's subjects completely
        assert df["measured"].str.contains("preact_resnet20").any()
    else:
        assert (df["verdict"] != "NOT RUN").sum() >= 25


def test_a_subject_can_be_compared_with_itself_over_time(runs):
    """Per-subject epoch windows: a ResNet whose transition ratios start at 3 and end near 1 is closer to 1
    late than early (PASS); the reversed pair FAILs; the label names each window."""

    def ratios(epoch: int) -> dict:
        r = 1.0 + 2.0 * math.exp(-epoch / 3)  # 3 at epoch 0, about 1.0 at epoch 20
        return {"grad_norm_ratio": [{"name": "layer2.0", "transition": True, "in_shape": [16], "ratio": r}]}

    for seed in range(3):
        runs.add(
            "preact_resnet20",
            seed=seed,
            errors=[5.0] * 20,
            probes={e: ratios(e + 0.1 * seed) for e in range(21)},
        )
    late = {"model": "preact_resnet20", "epochs": [16, 20]}
    early = {"model": "preact_resnet20", "epochs": [1, 5]}
    args = {"metric": "grad_norm_ratio", "blocks": "transition", "pairs": [[late, early]]}
    row = _eval(_claim("closer_to_one", args), runs)
    assert row["verdict"] == "REPRODUCED", row["measured"]
    assert "preact_resnet20 epochs 16-20" in row["measured"] and "epochs 1-5" in row["measured"]
    row = _eval(_claim("closer_to_one", {**args, "pairs": [[early, late]]}), runs)
    assert row["verdict"] == "DEVIATES", row["measured"]


def test_a_subject_can_be_restricted_to_a_layer_window(runs):
    """Per-subject layer windows (fractions of the recorded layers): condition numbers high in the first tenth
    and low in the later half PASS "later < early"; the reversed chain FAILs."""
    layers = [{"name": f"l{i}", "kappa": 1000.0 / (i + 1) ** 2 + 5.0} for i in range(20)]
    for seed in range(3):
        runs.add("resnet164", seed=seed, errors=[5.0], probes={1: {"hidden_condition": layers}})
    late = {"model": "resnet164", "layers": [0.5, 1.0]}
    early = {"model": "resnet164", "layers": [0.0, 0.1]}
    args = {"metric": "hidden_condition_number", "aggregate": "median_over_layers", "chains": [[late, early]]}
    row = _eval(_claim("order_less_than", args), runs)
    assert row["verdict"] == "REPRODUCED", row["measured"]
    assert "layers 0.5-1 of the depth" in row["measured"]
    assert (
        _eval(_claim("order_less_than", {**args, "chains": [[early, late]]}), runs)["verdict"] == "DEVIATES"
    )
    from normbench.verdicts.values import layer_window

    assert layer_window(list(range(11)), [0.0, 0.1]) == [0, 1] and layer_window([7], [0.5, 1.0]) == []


def test_activation_range_of_the_later_layer_below_the_first(runs):
    """activation_range reads every recorded layer's range in forward order; a layer window picks one."""
    for seed in range(3):
        dist = [
            {"name": "fc", "layer_index": 163, "range": 6.0 + seed},
            {"name": "stem", "layer_index": 0, "range": 1.7e6 * (1 + 0.1 * seed)},
        ]
        runs.add("convnet164", seed=seed, errors=[5.0], probes={1: {"activation_dist": dist}})
    later = {"model": "convnet164", "layers": [1.0, 1.0]}
    first = {"model": "convnet164", "layers": [0.0, 0.0]}
    args = {"metric": "activation_range", "aggregate": "median", "chains": [[later, first]]}
    assert _eval(_claim("order_less_than", args), runs)["verdict"] == "REPRODUCED"
    assert (
        _eval(_claim("order_less_than", {**args, "chains": [[first, later]]}), runs)["verdict"] == "DEVIATES"
    )


def test_backward_pattern_stable_iteration(tmp_path):
    """Profiles converging to a fixed pattern: the stable iteration is the first record from which every
    later one (before the learning-rate drop) is within a factor 2 of the last; records after the drop and
    unknown iterations are ignored; fewer than three profiles: NaN. The claim passes when it is below 3300."""
    from normbench.runs.folder import Run
    from normbench.verdicts.values import stable_iteration

    target = [math.log(v) for v in (0.1, 0.3, 1.0)]

    def run(shifts: dict[int, float], drop_after: int | None = None) -> Run:
        records = []
        for epoch in range(1, 41):  # 100 steps per epoch
            lr = 0.01 if drop_after is not None and epoch > drop_after else 0.1
            records.append({"kind": "epoch", "epoch": epoch, "steps": 100, "lr": lr})
        for it, shift in sorted(shifts.items()):
            q = [math.exp(t + shift * (i < 2)) for i, t in enumerate(target)]
            records.append(
                {
                    "kind": "probe",
                    "epoch": it // 100 + 1,
                    "iteration": it,
                    "probes": {"backward_moments": {"q": q}},
                }
            )
        return Run(tmp_path, {"seed": 0}, records)

    # off by a factor 8 until 2000, a factor 1.5 from 2500 on
    shifts = {
        **{it: math.log(8.0) for it in range(50, 2001, 50)},
        **{it: math.log(1.5) for it in range(2050, 4001, 50)},
    }
    assert stable_iteration(run(shifts)) == 2050.0
    # after a drop (at iteration 3000) the pattern may change: not counted
    late = {**shifts, **{it: math.log(50.0) for it in range(3050, 4001, 50)}}
    assert stable_iteration(run(late, drop_after=30)) == 2050.0
    assert math.isnan(stable_iteration(run({50: 0.0, 100: 0.0})))


def test_fig4_claim_reads_the_stable_iteration(runs):
    """The paper's claim on hand-made runs whose profile settles after epoch 10 (10 steps an epoch: iteration
    100): each run's stable iteration is 100, below 3300."""
    claim = next(c for c in load_claims() if c.id == "fig4_pattern_stable_by_3000")
    for seed in range(3):
        probes = {
            e: {"backward_moments": {"q": [0.1 * (f := 8.0 if e < 10 else 1.2), 0.3 * f, 1.0]}}
            for e in range(0, 31)
        }
        runs.add(
            "convnet44",
            method="ortho_init+ortho_reg",
            seed=seed,
            errors=[10.0] * 30,
            probes=probes,
            reproduces=("xie2017/fig4",),
        )
    row = _eval(claim, runs)
    assert "100 ± 0" in row["measured"] and row["verdict"] in ("REPRODUCED", "PROXY"), row


# ------------------------------------------------------------------------------------------ gain_shrinks


def _gain_runs(runs, gains, noise=(0.0, 0.0, 0.0), n=3, diverged=None):
    """Per depth d (models net34, net101): L2 runs at 30 % error, ortho runs at 30 - gain; ``noise`` is added
    to both sides per seed."""
    for model, gain in zip(("net34", "net101"), gains):
        for seed in range(n):
            for method, err in (("none", 30.0), ("ortho_init+ortho_reg", 30.0 - gain)):
                e = err + noise[seed] * (1 if method == "none" else -1)
                div = 1 if diverged == (model, method, seed) else None
                runs.add(model, seed=seed, method=method, errors=[e], diverged_at=div)
    return runs


GAINS = {
    "metric": "test_accuracy",
    "gains": [
        [{"model": "net34"}, {"model": "net34", "method": "ortho_init+ortho_reg"}],
        [{"model": "net101"}, {"model": "net101", "method": "ortho_init+ortho_reg"}],
    ],
}


@pytest.mark.parametrize(
    ("gains", "noise", "n", "verdict"),
    [
        ((3.0, 0.5), (0.1, -0.1, 0.0), 3, "REPRODUCED"),  # the boost shrinks with depth
        ((0.5, 3.0), (0.1, -0.1, 0.0), 3, "DEVIATES"),  # it grows
        ((3.0, 2.5), (2.0, -2.0, 0.0), 3, "INCONCLUSIVE"),  # noise of several points covers both
        ((3.0, 0.5), (0.0,), 1, "INCONCLUSIVE"),  # one run a side: no spread
    ],
)
def test_gain_shrinks(runs, gains, noise, n, verdict):
    row = _eval(_claim("gain_shrinks", GAINS), _gain_runs(runs, gains, noise, n))
    assert row["verdict"] == verdict, row["measured"]
    assert "gains" in row["measured"]


def test_gain_shrinks_reads_errors_the_other_way_and_never_decides_on_survivors(tmp_path):
    """On an error (lower is better) the gain is baseline - treated, so the same runs give the same outcome;
    a diverged run on any side leaves the comparison INCONCLUSIVE."""
    errors = {**GAINS, "metric": "final_test_error"}
    good = _gain_runs(Runs(tmp_path / "a"), (3.0, 0.5), (0.1, -0.1, 0.0))
    assert _eval(_claim("gain_shrinks", errors), good)["verdict"] == "REPRODUCED"
    lost = _gain_runs(Runs(tmp_path / "b"), (3.0, 0.5), (0.1, -0.1, 0.0), diverged=("net101", "none", 0))
    row = _eval(_claim("gain_shrinks", GAINS), lost)
    assert row["verdict"] == "INCONCLUSIVE" and "diverged" in row["measured"]


def test_xie_imagenet_boost_claim_on_hand_made_runs(runs):
    """The paper's Fig. 5 right claim reads ImageNet runs of both networks under L2 and orthonormality."""
    claim = next(c for c in load_claims() if c.id == "fig5_imagenet_boost_decreases_with_depth")
    for model, gain in (("imagenet_resnet34_xie", 2.0), ("imagenet_resnet101_xie", 0.2)):
        for seed, jitter in enumerate((0.05, -0.05, 0.0)):
            for method, err in (("none", 30.0), ("ortho_init+ortho_reg", 30.0 - gain)):
                runs.add(
                    model,
                    seed=seed,
                    method=method,
                    errors=[err + jitter],
                    dataset="imagenet",
                    reproduces=("xie2017/fig5",),
                )
    row = _eval(claim, runs)
    assert row["outcome"] == "PASS", row["measured"]


@pytest.mark.parametrize(("plain", "residual", "outcome"), [(2.3, 0.01, "PASS"), (0.01, 2.3, "FAIL")])
def test_oyedotun_training_loss_claim(runs, plain, residual, outcome):
    """Figs. 3-4: PlainNet-164's training loss above ResNet-164's and ResNeXt-164's, MNIST and CIFAR-10."""
    claim = next(c for c in load_claims() if c.id == "plain_training_loss_extremely_high")
    for dataset in ("mnist", "cifar10"):
        for model, loss in (("convnet164", plain), ("resnet164", residual), ("resnext164", residual)):
            for seed in range(3):
                runs.add(
                    model,
                    seed=seed,
                    errors=[10.0],
                    dataset=dataset,
                    train_loss=loss * (1 + 0.01 * seed),
                    reproduces=("oyedotun2020/table1",),
                )
    row = _eval(claim, runs)
    assert row["outcome"] == outcome, row["measured"]


@pytest.mark.parametrize(("stem", "transition", "outcome"), [(4.0, 1.1, "PASS"), (1.05, 3.0, "FAIL")])
def test_procresnet_stem_claim_compares_blocks_of_one_model(runs, stem, transition, outcome):
    """Zaeemzadeh Fig. 3: "In ProcResNet, the only block that is less norm preserving is the first transition
    block": per-subject block selections of the same runs (the stem against the other transitions and
    against the non-transition blocks). A ProcResNet whose stem is at 1 and a later transition at 3 fails."""
    claim = next(c for c in load_claims() if c.id == "procresnet_only_stem_less_norm_preserving")
    for model in ("procresnet22", "procresnet85", "procresnet166"):
        for seed in range(3):
            blocks = [
                {"index": 0, "name": "stem", "transition": True, "in_shape": [3, 32, 32], "ratio": stem},
                {
                    "index": 1,
                    "name": "blocks.0",
                    "transition": False,
                    "in_shape": [64, 32, 32],
                    "ratio": 0.97,
                },
                {
                    "index": 2,
                    "name": "blocks.1",
                    "transition": True,
                    "in_shape": [64, 32, 32],
                    "ratio": transition,
                },
                {
                    "index": 3,
                    "name": "blocks.2",
                    "transition": False,
                    "in_shape": [128, 16, 16],
                    "ratio": 1.02,
                },
            ]
            for b in blocks:
                b["ratio"] *= 1 + 0.01 * seed
            probes = {e: {"grad_norm_ratio": blocks} for e in range(1, 4)}
            runs.add(
                model,
                method="procrustes",
                seed=seed,
                errors=[5.0] * 3,
                probes=probes,
                reproduces=("zaeemzadeh2020/fig3",),
            )
    row = _eval(claim, runs)
    assert row["outcome"] == outcome, row["measured"]
    assert "procresnet22 procrustes stem blocks" in row["measured"]


@pytest.mark.parametrize(("transition", "outcome"), [(0.3, "PASS"), (1.0, "FAIL")])
def test_resnet_transition_claim_reads_two_block_selections_of_one_model(runs, transition, outcome):
    """ "only 3 transition blocks are not norm preserving" (ResNet-83, -164): transitions at 0.3 against
    non-transition blocks near 1 hold; transitions at 1.0 with non-transition blocks at 0.7 do not."""
    claim = next(c for c in load_claims() if c.id == "resnet_only_transitions_not_norm_preserving")
    other = 0.98 if transition < 1 else 0.7
    for model in ("preact_resnet83", "preact_resnet164"):
        for seed in range(3):
            ratios = [transition, other, other, transition, other]
            blocks = _blocks([r * (1 + 0.01 * seed) for r in ratios], [True, False, False, True, False])
            probes = {e: {"grad_norm_ratio": blocks} for e in range(1, 4)}
            runs.add(model, seed=seed, errors=[5.0] * 3, probes=probes, reproduces=("zaeemzadeh2020/fig3",))
    row = _eval(claim, runs)
    assert row["outcome"] == outcome, row["measured"]


def _weight_dist(first, last):
    q = [0.0, 0.05, 0.5, 0.95, 1.0]
    return {
        "weight_dist": [
            {
                "name": "conv1",
                "layer_index": 0,
                "quantiles": {"q": q, "values": [-9.0, -first, 0.0, first, 9.0]},
            },
            {
                "name": "fc",
                "layer_index": 163,
                "quantiles": {"q": q, "values": [-9.0, -last, 0.0, last, 9.0]},
            },
        ]
    }


@pytest.mark.parametrize(
    ("claim_id", "table", "dataset"),
    [
        ("plain_weights_larger", "fig5", "mnist"),
        ("plain_first_layer_weights_larger_cifar10", "figa1", "cifar10"),
    ],
)
@pytest.mark.parametrize(("plain", "residual", "outcome"), [(2e5, 0.1, "PASS"), (0.1, 0.3, "FAIL")])
def test_oyedotun_weight_claims(runs, claim_id, table, dataset, plain, residual, outcome):
    """Figs. 6/8/10 (MNIST) and A2/A4/A6 (CIFAR-10): PlainNet's weights far outside the residual nets'
    range; on the CIFAR-10 claim only the first layer counts (a large last layer does not rescue it)."""
    claim = next(c for c in load_claims() if c.id == claim_id)
    for model, bound in (("convnet164", plain), ("resnet164", residual), ("resnext164", residual)):
        for seed in range(3):
            b = bound * (1 + 0.01 * seed)
            last = 1e9 if model != "convnet164" and claim_id.endswith("cifar10") and outcome == "PASS" else b
            runs.add(
                model,
                seed=seed,
                errors=[50.0],
                dataset=dataset,
                probes={1: _weight_dist(b, last)},
                reproduces=(f"oyedotun2020/{table}",),
            )
    row = _eval(claim, runs)
    assert row["outcome"] == outcome, row["measured"]
