"""Xie et al. Sec. 5.3's "always" modulation: both readings are planned, each with its reference row and claim."""

from pathlib import Path

from normbench.config import load_config, run_config, run_specs
from normbench.methods import effective_options
from normbench.methods.modulation import Modulation
from normbench.references import load_claims, load_references
from normbench.runs.folder import Run
from normbench.verdicts.numbers import run_matches

REPO = Path(__file__).resolve().parents[1]
METHOD = "ortho_init+ortho_reg+modulation"


def _runs(experiment: str) -> list[Run]:
    config = load_config(REPO / "config" / "paper.yaml")
    return [
        Run(path=Path("."), config=run_config(config, s), records=[]) for s in run_specs(config, experiment)
    ]


def test_both_readings_are_planned_with_the_stated_options():
    early = _runs("xie2017_table2_ours")
    always = _runs("xie2017_modulation_always")
    isometric = _runs("xie2017_modulation_always_isometric")
    opts = {
        name: effective_options(METHOD, runs[0].config["method_options"])["modulation"]
        for name, runs in (
            ("early", [r for r in early if r.config["method"] == METHOD]),
            ("always", always),
            ("isometric", isometric),
        )
    }
    defaults = Modulation()
    assert opts["early"] == {"threshold": defaults.threshold, "n_iters": 2000, "layers": "conv"}
    assert opts["always"]["threshold"] == 2.0 and opts["always"]["n_iters"] >= 10**9
    assert opts["isometric"]["threshold"] == 1.0 and opts["isometric"]["n_iters"] >= 10**9
    assert len({tuple(sorted(o.items())) for o in opts.values()}) == 3


def test_each_reading_has_its_own_reference_row_and_claim():
    refs = [r for r in load_references() if r.table_key == "xie2017/sec53"]
    runs = {
        name: _runs(name)
        for name in (
            "xie2017_table2_ours",
            "xie2017_modulation_always",
            "xie2017_modulation_always_isometric",
        )
    }
    matched = {}
    for ref in refs:
        hits = {
            name
            for name, rs in runs.items()
            for r in rs
            if run_matches(r, ref.table_key, ref.model, ref.method, ref.options, ref.optimizer, ref.dataset)
        }
        assert len(hits) == 1, (ref.row, hits)  # no reading's runs pooled with another's
        matched[hits.pop()] = ref.value
    assert matched == {
        "xie2017_table2_ours": 81.6,
        "xie2017_modulation_always": 73.5,
        "xie2017_modulation_always_isometric": 73.5,
    }
    claims = {c.id: c for c in load_claims() if c.paper == "xie2017"}
    thresholds = {
        cid: effective_options(METHOD, claims[cid].args["chains"][0][0]["options"])["modulation"]["threshold"]
        for cid in ("modulation_early_beats_always", "modulation_early_beats_always_isometric")
    }
    assert thresholds == {
        "modulation_early_beats_always": 2.0,
        "modulation_early_beats_always_isometric": 1.0,
    }


def test_docs_and_docstring_name_both_readings_and_the_same_n():
    import normbench.methods.modulation as mod

    methods_md = (REPO / "docs" / "methods.md").read_text()
    for text in (methods_md, mod.__doc__):
        assert "xie2017_modulation_always_isometric" in text
        assert "2000" in text
    assert "n_iters: 3000" not in methods_md
    assert Modulation().n_iters == 2000
