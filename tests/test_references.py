"""The paper numbers as data: schema, consistency with the registries, and every number against the papers.

The transcription tests read ``../shared/papers`` beside the repository (where CI has it) and skip cleanly
when it is absent. They check that every table row we record appears verbatim, in order, in the paper's
transcription with the same numbers in the same columns, and that every number taken from running text
comes with a verbatim quote that is in the transcription.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import io
import json
import math
import re
from pathlib import Path

import pytest
import yaml

from normbench.references import (
    CHECKS,
    RECIPE_KEYS,
    Claim,
    Reference,
    ReferenceError,
    load_claims,
    load_references,
    parse_claims_file,
    parse_reference_file,
    reference_files,
)

REPO = Path(__file__).resolve().parents[1]
PAPERS_DIR = REPO.parent / "shared" / "papers"
PAPERS = {
    "zaeemzadeh2020": "000_711846470ddddd45.txt",
    "jia2017": "002_d656f97adaea3437.txt",
    "oyedotun2020": "003_30ef1236d3220efa.txt",
    "xie2017": "004_e7f9d1cea5ff5c60.txt",
}
SOURCES = {p: f"shared/papers/{f}" for p, f in PAPERS.items()}
# Metrics that are not a quantity over training runs (statistic: none).
NON_RUN_METRICS = {
    "params",
    "depth",
    "residual_blocks",
    "transition_blocks",
    "modified_blocks",
    "params_increase",
    "params_reduction_factor",
}
FILES = reference_files()
REFS = load_references()
CLAIMS = load_claims()

# Model names the claims use that the registry does not have yet (each test is xfail strict: remove the name
# here once the registry has it).
PENDING_MODELS: dict[str, str] = {}


def _raw(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _paper_text(paper: str) -> str:
    path = PAPERS_DIR / PAPERS[paper]
    if not path.is_file():
        pytest.skip(f"paper transcriptions not found at {PAPERS_DIR}")
    return path.read_text(encoding="utf-8")


def _squash(text: str) -> str:
    return " ".join(text.split())


# ------------------------------------------------------------------------------------------ files and schema


def test_one_file_per_paper():
    assert sorted(p.stem for p in FILES) == sorted(PAPERS)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_file_validates_and_is_named_after_its_paper(path):
    refs = parse_reference_file(path)
    claims = parse_claims_file(path)
    assert refs, "a paper file without entries"
    assert {r.paper for r in refs} | {c.paper for c in claims} == {path.stem}
    assert _raw(path)["paper"] == path.stem


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_table_id_has_a_protocol(path):
    doc = _raw(path)
    used = {e["table"] for e in doc["entries"]} | {c["table"] for c in doc.get("claims", [])}
    assert used <= set(doc["protocols"]), used - set(doc["protocols"])
    unused = set(doc["protocols"]) - used
    assert not unused, f"protocols with neither entries nor claims: {unused}"


def test_ids_are_unique():
    ids = [r.id for r in REFS]
    assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]
    keys = [c.key for c in CLAIMS]
    assert len(keys) == len(set(keys)), [k for k in keys if keys.count(k) > 1]


def test_values_are_numbers_or_null_with_a_reason():
    for r in REFS:
        if r.value is None:
            assert r.missing in ("diverged", "not_reported", "illegible"), r.id
            assert r.note, f"{r.id}: a null value needs a note"
        else:
            assert isinstance(r.value, (int, float)) and not isinstance(r.value, bool), r.id
            assert math.isfinite(r.value), r.id
            assert r.missing is None, f"{r.id}: 'missing' on an entry that has a value"


def test_statistics_and_runs_are_consistent():
    for r in REFS:
        # the one exception: Zaeemzadeh Table 2's ResNet rows are "the best results reported by [6] and
        # [26]", cited works whose run counts this paper does not state (compared with our best of our runs)
        cited_best = r.statistic == "best" and r.runs is None and "cited from [" in r.note
        if r.statistic in ("best", "mean", "median", "max", "std") and not cited_best:
            assert r.runs is not None and r.runs >= 2, (
                f"{r.id}: {r.statistic} over an unstated number of runs"
            )
        if r.statistic == "none":
            assert r.metric in NON_RUN_METRICS, f"{r.id}: statistic none for a per-run metric {r.metric}"


def test_entries_with_another_source_say_why():
    for r in REFS:
        if r.source != SOURCES[r.paper]:
            assert r.note, f"{r.id}: value read from {r.source!r} without a note saying why"


def test_claim_checks_are_from_the_vocabulary():
    assert {c.check for c in CLAIMS} <= set(CHECKS)
    for c in CLAIMS:
        assert c.subjects(), f"{c.key}: a claim about no model"
        assert c.statement and c.section


def test_loaders_return_dataclasses_and_flat_json():
    assert all(isinstance(r, Reference) for r in REFS)
    assert all(isinstance(c, Claim) for c in CLAIMS)
    d = REFS[0].to_dict()
    assert {"paper", "value", "id", "table", "row", "column", "metric", "statistic", "protocol"} <= set(d)
    json.dumps([r.to_dict() for r in REFS])
    json.dumps([c.to_dict() for c in CLAIMS])


def test_python_m_references_json():
    from normbench.references.__main__ import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["--json"]) == 0
    items = json.loads(out.getvalue())
    assert len(items) == len(REFS)
    assert all("paper" in x and "value" in x for x in items)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["--json", "--claims", "--paper", "jia2017"]) == 0
    claims = json.loads(out.getvalue())
    assert claims and all(c["paper"] == "jia2017" and c["check"] in CHECKS for c in claims)


def test_cli_references_json():
    from normbench.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["references", "--json"]) == 0
    items = json.loads(out.getvalue())
    assert len(items) == len(REFS)
    assert all({"paper", "value"} <= set(x) for x in items)


# --------------------------------------------------------------------------------- the schema rejects errors


def _write(tmp_path: Path, doc: dict, name: str | None = None) -> Path:
    path = tmp_path / f"{name or doc['paper']}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture
def good_doc() -> dict:
    return {
        "paper": "doe2020",
        "title": "t",
        "source": "shared/papers/x.txt",
        "protocols": {"table1": {"label": "Table 1", "dataset": "cifar10", "description": "d"}},
        "entries": [
            {
                "table": "table1",
                "row": "r",
                "column": "c",
                "model": "m",
                "metric": "final_test_error",
                "units": "%",
                "statistic": "unstated",
                "value": 1.5,
            },
        ],
        "claims": [
            {
                "id": "c1",
                "table": "table1",
                "section": "Sec. 1",
                "statement": "s",
                "check": "less_than",
                "args": {"metric": "final_test_error", "a": {"model": "m"}, "value": 2.0},
            },
        ],
    }


def test_good_document_loads(tmp_path, good_doc):
    path = _write(tmp_path, good_doc)
    assert parse_reference_file(path)[0].value == 1.5
    assert parse_claims_file(path)[0].args["value"] == 2.0


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["entries"][0].update(value="1.5"), "value"),
        (lambda d: d["entries"][0].update(value=None), "missing"),
        (lambda d: d["entries"][0].update(value=None, missing="diverged"), "note"),
        (lambda d: d["entries"][0].update(statistic="average"), "statistic"),
        (lambda d: d["entries"][0].update(table="table9"), "table9"),
        (lambda d: d["entries"].append(dict(d["entries"][0])), "duplicate"),
        (lambda d: d["claims"][0].update(check="looks_good"), "check"),
        (lambda d: d["claims"][0]["args"].pop("value"), "args"),
        (lambda d: d["claims"][0]["args"].update(b={"model": "m2"}), "args"),
        (lambda d: d["claims"][0]["args"].update(threshold=3), "threshold"),
        (lambda d: d["claims"].append(dict(d["claims"][0])), "duplicate"),
        (lambda d: d["claims"][0].update(table="fig9"), "fig9"),
        (lambda d: d.update(paper="Doe2020"), "paper"),
    ],
)
def test_schema_rejects(tmp_path, good_doc, mutate, message):
    doc = copy.deepcopy(good_doc)
    mutate(doc)
    path = _write(tmp_path, doc, name="doe2020")
    with pytest.raises(ReferenceError, match=message):
        parse_reference_file(path)
        parse_claims_file(path)


def test_file_name_must_be_the_paper_key(tmp_path, good_doc):
    with pytest.raises(ReferenceError, match="file name"):
        parse_reference_file(_write(tmp_path, good_doc, name="doe2021"))


# ---------------------------------------------------------------------- consistency with the other registries


def _subjects() -> list[dict]:
    found = []
    for r in REFS:
        if r.model is not None:
            found.append({"model": r.model, "method": r.method, "options": r.options})
        if r.baseline:
            found.append(r.baseline)
    for c in CLAIMS:
        found += c.subjects()
    return found


MODEL_NAMES = sorted({s["model"] for s in _subjects()})
METHOD_NAMES = sorted({s.get("method", "none") for s in _subjects()} | {r.method for r in REFS})


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(reason=PENDING_MODELS[n], strict=True))
        if n in PENDING_MODELS
        else n
        for n in MODEL_NAMES
    ],
)
def test_model_is_registered(name):
    from normbench.models import MODELS

    assert name in MODELS, f"reference model {name!r} is not in normbench.models.MODELS"


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_method_is_registered(name):
    from normbench.methods import METHODS

    missing = [p for p in name.split("+") if p not in METHODS]
    assert not missing, f"method {name!r}: {missing} not in normbench.methods.METHODS"


def test_method_options_name_real_parameters():
    from normbench.methods import METHODS

    for s in _subjects():
        for part, opts in (s.get("options") or {}).items():
            assert part in s.get("method", "none").split("+"), f"options for {part!r} on method {s}"
            params = inspect.signature(METHODS[part].__init__).parameters
            unknown = set(opts) - set(params)
            assert not unknown, f"{part}: unknown options {unknown} ({s})"


def test_registry_param_counts_agree_with_the_papers():
    """The registry's ``paper_params`` and our ``params`` entries are read from the same tables."""
    from normbench.models import MODELS

    for r in REFS:
        if r.metric == "params" and r.model in MODELS and r.value is not None:
            info = MODELS[r.model]
            if info.paper == r.paper and info.paper_params is not None:
                assert math.isclose(info.paper_params, r.value * 1e6, rel_tol=1e-9), (r.id, info.paper_params)


def _config_tables() -> list[tuple[str, str, str]]:
    out = []
    for path in sorted((REPO / "config").glob("**/*.yaml")):
        doc = yaml.safe_load(path.read_text()) or {}
        for exp, spec in (doc.get("experiments") or {}).items():
            for key in (spec or {}).get("reproduces", []) or []:
                out.append((path.name, exp, key))
    return out


_NO_CONFIG = pytest.param(
    None, None, None, marks=pytest.mark.skip(reason="no configuration names a paper table")
)


@pytest.mark.parametrize("config, experiment, key", _config_tables() or [_NO_CONFIG])
def test_every_table_a_config_plans_has_references(config, experiment, key):
    keys = {r.table_key for r in REFS} | {c.table_key for c in CLAIMS}
    assert key in keys, f"{config}: experiment {experiment} reproduces {key}, which has no reference"


# ------------------------------------------------------------------------ every number against the papers

_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _rows(row: str, columns: list[str | None]) -> list:
    return [None if c is None else (row, c) for c in columns]


_Z1 = ["Plain mean", "Plain max", "ResNet mean", "ResNet max", "ProcResNet mean", "ProcResNet max"]
_Z2 = [None, None, "# Params", "Depth", "CIFAR10", "CIFAR100"]
_J2 = ["CIFAR10", "CIFAR100", "# layers", "# params"]
_O = [None, "Train accuracy", "Test accuracy", "# of param."]

# (paper, table) -> consecutive lines of the transcription (exact, tab-separated) and, per tab-separated cell,
# None (a label) or the (row, column) of the entry holding its number (a list for a cell with several numbers).
TABLE_LINES: dict[tuple[str, str], list[tuple[str, list]]] = {
    ("zaeemzadeh2020", "table1"): [
        ("20\t6.7\t20.0\t5.5\t23.1\t2.3\t8.3", [None] + _rows("depth 20", _Z1)),
        ("83\t7.5\t30.1\t5.1\t12.5\t2.0\t7.7", [None] + _rows("depth 83", _Z1)),
        ("164\t-\t-\t5.2\t18.7\t3.3\t8.7", [None] + _rows("depth 164", _Z1)),
    ],
    ("zaeemzadeh2020", "table2"): [
        ("ResNet [6]\tpre-activation\t1.71M\t164\t5.46\t24.33", _rows("ResNet pre-activation 164", _Z2)),
        ("\t\t10.32M\t1001\t4.62\t22.71", _rows("ResNet pre-activation 1001", _Z2)),
        ("\tErasedReLU [26]\t1.70M\t164\t4.65\t22.41", _rows("ResNet ErasedReLU 164", _Z2)),
        ("\t\t10.32M\t1001\t4.10\t20.63", _rows("ResNet ErasedReLU 1001", _Z2)),
        ("ProcResNet\tpre-activation\t1.72M\t166\t4.75\t22.61", _rows("ProcResNet pre-activation 166", _Z2)),
        ("\t\t10.33M\t1003\t3.72\t19.99", _rows("ProcResNet pre-activation 1003", _Z2)),
        ("\tErasedReLU [26]\t1.72M\t166\t4.53\t21.91", _rows("ProcResNet ErasedReLU 166", _Z2)),
        ("\t\t10.33M\t1003\t<b>3.42</b>\t<b>18.12</b>", _rows("ProcResNet ErasedReLU 1003", _Z2)),
    ],
    ("zaeemzadeh2020", "table3"): [
        ("Original\tNo\t24.33", [None, None, ("Original transition block, no projection", "Error (%)")]),
        ("Modified\tNo\t23.06", [None, None, ("Modified transition block, no projection", "Error (%)")]),
        ("Modified\tYes\t22.61", [None, None, ("Modified transition block, projection", "Error (%)")]),
    ],
    ("jia2017", "table1"): [
        (f"{row}\t{cell}", [None, [(row, "best"), (row, "mean"), (row, "std")]])
        for row, cell in (
            ("SGD with momentum + BN", r"$6.10 (6.22 \pm 0.14)$"),
            ("SVB + BN", r"$5.65 (5.79 \pm 0.10)$"),
            ("SVB + BBN", r"$5.37 \ (5.49 \pm 0.11)$"),
        )
    ],
    ("jia2017", "table2"): [
        ("8.81\t-\t-\t-", _rows("row 1 (cited)", _J2)),
        ("8.39\t-\t19\t2.5M", _rows("row 2 (cited)", _J2)),
        ("7.97\t-\t-\t-", _rows("row 3 (cited)", _J2)),
        ("7.54\t32.24\t19\t2.3M", _rows("row 4 (cited)", _J2)),
        ("6.43\t25.16\t110\t1.7M", _rows("row 5 (cited)", _J2)),
        ("4.91\t-\t1202\t10.2M", _rows("row 6 (cited)", _J2)),
        ("4.92\t22.71\t1001\t10.2M", _rows("row 7 (cited)", _J2)),
        ("4.17\t20.50\t28\t36.5M", _rows("row 8 (cited)", _J2)),
        ("3.77\t19.73\t-\t13.3M", _rows("row 9 (cited)", _J2)),
        ("4.50\t20.78\t28\t36.5M", _rows("WRN-28-10, SGD + BN (ours)", _J2)),
        ("3.58\t18.32\t28\t36.5M", _rows("WRN-28-10, SVB + BBN (ours)", _J2)),
    ],
    ("jia2017", "table4"): [
        (
            "Our Inception-ResNet\t21.61\t5.91",
            _rows("Our Inception-ResNet", [None, "Top-1 error (%)", "Top-5 error (%)"]),
        ),
        (
            "Our Inception-ResNet WITH SVB+BN\t21.20\t5.57",
            _rows("Our Inception-ResNet WITH SVB+BN", [None, "Top-1 error (%)", "Top-5 error (%)"]),
        ),
    ],
    ("oyedotun2020", "table1"): [
        ("PlainNet-164\t11.38%\t11.35%\t2.5M", _rows("PlainNet-164", _O)),
        ("ResNet-164\t99.58%\t99.60%\t2.6M", _rows("ResNet-164", _O)),
        ("ResNeXt-164\t100%\t99.72%\t2.5M", _rows("ResNeXt-164", _O)),
    ],
    ("oyedotun2020", "table2"): [
        ("PlainNet-164\t10.26%\t10.16%\t2.5M", _rows("PlainNet-164", _O)),
        ("ResNet-164\t99.93%\t93.53%\t2.6M", _rows("ResNet-164", _O)),
        ("ResNeXt-164\t99.96%\t93.89%\t2.5M", _rows("ResNeXt-164", _O)),
    ],
    ("oyedotun2020", "table3"): [
        ("PlainNet-164\t1.00%\t1.12%\t2.5M", _rows("PlainNet-164", _O)),
        ("ResNet-164\t99.83%\t75.72%\t2.6M", _rows("ResNet-164", _O)),
        ("ResNeXt-164\t99.94%\t76.64%\t2.5M", _rows("ResNeXt-164", _O)),
    ],
    ("oyedotun2020", "table4"): [
        ("PlainNet-101\t15.37%\t14.94%\t44.1M", _rows("PlainNet-101", _O)),
        ("ResNet-101\t88.56%\t77.32%\t44.5M", _rows("ResNet-101", _O)),
        ("ResNeXt-101\t89.74%\t78.48%\t44.3M", _rows("ResNeXt-101", _O)),
    ],
    ("xie2017", "table2"): [
        (f"{row}\t{a}\t{b}\t", _rows(row, [None, "44-layer", "110-layer", None]))
        for row, a, b in (
            ("Nesterov[24]", "85.0", "10.18"),
            ("AdaGrad[7]", "77.86", "30.3"),
            ("AdaDelta[44]", "48.73", "25.6"),
            ("Adam[14]", "39.85", "10.0"),
            ("RmsProp[40]", "10.0", "10.0"),
            ("SGD", "84.14", "11.83"),
            ("Ours", "88.42", "81.6"),
        )
    ],
}

BY_ID = {(r.paper, r.table, r.row, r.column): r for r in REFS}


def _cell_numbers(cell: str) -> list[float | None]:
    if cell.strip() == "-":
        return [None]
    return [float(x) for x in _NUMBER.findall(cell)]


@pytest.mark.parametrize("key", sorted(TABLE_LINES), ids=lambda k: "/".join(k))
def test_table_rows_match_the_transcription(key):
    paper, table = key
    lines = _paper_text(paper).splitlines()
    expected = [line for line, _ in TABLE_LINES[key]]
    starts = [i for i in range(len(lines)) if lines[i : i + len(expected)] == expected]
    assert len(starts) == 1, f"{key}: the rows do not occur exactly once, consecutively, in {PAPERS[paper]}"
    for line, cells in TABLE_LINES[key]:
        parts = line.split("\t")
        assert len(parts) == len(cells), (line, cells)
        for part, target in zip(parts, cells):
            if target is None:
                continue
            targets = target if isinstance(target, list) else [target]
            numbers = _cell_numbers(part)
            assert len(numbers) == len(targets), (part, targets)
            for number, (row, column) in zip(numbers, targets):
                ref = BY_ID.get((paper, table, row, column))
                assert ref is not None, f"no entry {paper}/{table}/{row}/{column} for cell {part!r}"
                if number is None:
                    assert ref.value is None, f"{ref.id}: the paper prints '-', the entry has {ref.value}"
                else:
                    assert ref.value is not None and math.isclose(ref.value, number), (
                        ref.id,
                        ref.value,
                        number,
                    )


_WORDS = {"three": 3}
# Numbers a quote spells out in words.
QUOTE_WORDS = {
    "zaeemzadeh2020/text_structure/ResNet/transition blocks": "three",
    "oyedotun2020/fig13/PlainNet-164, CIFAR-10/first layer with infinite condition number": "eightieth",
    "oyedotun2020/fig13/PlainNet-164, CIFAR-100/first layer with infinite condition number": "hundredth",
    "xie2017/fig3/ortho reg vs L2 reg/gain in the error second-moment ratio": "one order of magnitude",
}


def _spellings(value: float) -> set[str]:
    out = {f"{value:g}", f"{value:.1f}", f"{value:.2f}"}
    if float(value).is_integer():
        out |= {str(int(value)), f"{int(value):,}"}
        if value >= 1e6:
            out.add(f"{value / 1e6:g} million")
    elif abs(value) < 0.01:
        mantissa, exponent = f"{value:.0e}".split("e")
        out.add(f"{mantissa}×10^{{{int(exponent)}}}")
    return out


def _pinned_by_a_table_row() -> set[str]:
    ids = set()
    for (paper, table), rows in TABLE_LINES.items():
        for _, cells in rows:
            for target in cells:
                for row, column in target if isinstance(target, list) else [target] if target else []:
                    ids.add(f"{paper}/{table}/{row}/{column}")
    return ids


def test_every_number_is_pinned_to_the_paper():
    """Each number is either a table cell checked above or carries a quote; an illegible cell is null."""
    pinned = _pinned_by_a_table_row()
    loose = [r.id for r in REFS if r.id not in pinned and not r.quote and r.value is not None]
    assert not loose, f"entries neither in a checked table row nor quoted: {loose}"


@pytest.mark.parametrize("ref", [r for r in REFS if r.quote], ids=lambda r: r.id)
def test_quotes_are_in_the_transcription_and_hold_the_value(ref):
    text = _squash(_paper_text(ref.paper))
    assert _squash(ref.quote) in text, f"{ref.id}: quote not found in {PAPERS[ref.paper]}"
    word = QUOTE_WORDS.get(ref.id)
    if word is not None:
        assert word in ref.quote
        if word in _WORDS:
            assert ref.value == _WORDS[word]
    else:
        assert any(s in ref.quote for s in _spellings(ref.value)), f"{ref.id}: {ref.value} not in its quote"


# Only the paper's text is a source: Jia et al. Table 3's illegible cells are null, never filled from elsewhere.
JIA_TABLE3_ILLEGIBLE = {
    ("Wide ResNet (WRN-28-10) W/O SVB+BBN", "CIFAR10"),
    ("Wide ResNet (WRN-28-10) W/O SVB+BBN", "CIFAR100"),
    ("Wide ResNet (WRN-28-10) WITH SVB+BBN", "CIFAR10"),
    ("Wide ResNet (WRN-28-10) WITH SVB+BBN", "CIFAR100"),
    ("Wider ResNet (WRN-28-16) W/O SVB+BBN", "CIFAR10"),
    ("Wider ResNet (WRN-28-16) W/O SVB+BBN", "CIFAR100"),
}


def test_every_entry_comes_from_the_paper_text():
    assert all(r.source == SOURCES[r.paper] for r in REFS)
    jia3 = {(r.row, r.column): r for r in REFS if r.paper == "jia2017" and r.table == "table3"}
    for key in JIA_TABLE3_ILLEGIBLE:
        assert jia3[key].value is None and jia3[key].missing == "illegible"


# Spot checks: a handful of numbers per paper, each searched for in its table's block of the transcription.
SPOT = [
    ("zaeemzadeh2020", "table2", "ResNet pre-activation 1001", "CIFAR10", 4.62, "TABLE 2", "TABLE 3"),
    ("zaeemzadeh2020", "table2", "ProcResNet ErasedReLU 1003", "CIFAR100", 18.12, "TABLE 2", "TABLE 3"),
    ("zaeemzadeh2020", "table1", "depth 83", "Plain max", 30.1, "TABLE 1", "training and to enjoy"),
    (
        "zaeemzadeh2020",
        "table3",
        "Modified transition block, no projection",
        "Error (%)",
        23.06,
        "TABLE 3",
        "results indicate",
    ),
    ("jia2017", "table1", "SVB + BBN", "mean", 5.49, "Table 1. Ablation", "learning"),
    ("jia2017", "table2", "row 4 (cited)", "CIFAR100", 32.24, "Table 2. Error rates", "responding to"),
    (
        "jia2017",
        "table4",
        "Our Inception-ResNet WITH SVB+BN",
        "Top-5 error (%)",
        5.57,
        "Table 4.",
        "same parameter",
    ),
    ("oyedotun2020", "table2", "ResNeXt-164", "Test accuracy", 93.89, "TABLE I:", "TABLE II:"),
    ("oyedotun2020", "table3", "PlainNet-164", "Train accuracy", 1.00, "TABLE II:", "TABLE III:"),
    ("oyedotun2020", "table4", "ResNet-101", "# of param.", 44.5, "TABLE III:", "TABLE IV:"),
    ("xie2017", "table2", "Ours", "110-layer", 81.6, "Method\tTop-1 Accuracy", "Table 2. Performance"),
    ("xie2017", "table2", "AdaGrad[7]", "44-layer", 77.86, "Method\tTop-1 Accuracy", "Table 2. Performance"),
    (
        "xie2017",
        "sec53",
        "plain-110, modulation keeping the error magnitudes isometric throughout",
        "top-1 accuracy",
        73.5,
        "5.3. The Rationality of Modulation",
        "5.4. Results",
    ),
]


@pytest.mark.parametrize("paper, table, row, column, value, start, end", SPOT, ids=lambda x: str(x)[:30])
def test_spot_check(paper, table, row, column, value, start, end):
    ref = BY_ID[(paper, table, row, column)]
    assert ref.value == value
    text = _paper_text(paper)
    i = text.index(start)
    block = text[i : text.index(end, i + len(start))]
    assert any(s in block for s in _spellings(value)), f"{value} not in the {start!r} block of {paper}"


# ------------------------------------------------------------------------------------------------ the docs

DOCS = REPO / "docs" / "references.md"


def test_docs_define_every_metric_and_check():
    text = DOCS.read_text()
    metrics = {r.metric for r in REFS} | {c.args["metric"] for c in CLAIMS if "metric" in c.args}
    undocumented = sorted(m for m in metrics if f"`{m}`" not in text)
    assert not undocumented, f"metrics not defined in {DOCS.name}: {undocumented}"
    for check in CHECKS:
        assert f"#### `{check}`" in text, f"check {check} has no section in {DOCS.name}"


def test_docs_counts_are_current():
    text = DOCS.read_text()
    total = re.search(r"Counts as of this version: (\d+) numbers and (\d+) claims", text)
    assert total and (int(total[1]), int(total[2])) == (len(REFS), len(CLAIMS))
    for paper in PAPERS:
        m = re.search(rf"### `{paper}` \((\d+) numbers, (\d+) claims\)", text)
        assert m, paper
        assert (int(m[1]), int(m[2])) == (
            sum(r.paper == paper for r in REFS),
            sum(c.paper == paper for c in CLAIMS),
        ), paper


# ------------------------------------------------------------------------------------- training recipes

RECIPE_NUMBERS = ("batch_size", "lr", "momentum", "weight_decay")


def _recipe_cases() -> list[tuple[str, str, str, str | None, float]]:
    """(paper, protocol, key, data set or None, value) for every non-null number of every recipe."""
    cases = []
    for path in FILES:
        doc = _raw(path)
        for name, proto in doc["protocols"].items():
            for key in RECIPE_NUMBERS:
                value = (proto.get("recipe") or {}).get(key)
                per = value if isinstance(value, dict) else {None: value}
                cases += [(doc["paper"], name, key, ds, v) for ds, v in per.items() if v is not None]
    return cases


def _number_spellings(value: float) -> set[str]:
    """How a transcription may print ``value``: 128, 0.1, 0.0001, 10^{-4}, 1e-4."""
    if float(value).is_integer():
        return {str(int(value))}
    out = {f"{value:g}", f"{value:f}".rstrip("0")}
    exponent = math.log10(value)
    if abs(exponent - round(exponent)) < 1e-9:
        k = round(exponent)
        out |= {f"10^{{{k}}}", f"10^{k}", f"1e{k}", f"10−{-k}" if k < 0 else f"10{k}"}
    return out


def _number_in_text(text: str, value: float) -> bool:
    """``value`` is printed in ``text`` as a whole number (0.1 does not match 0.15 or 10.1)."""
    return any(re.search(rf"(?<![\d.]){re.escape(s)}(?!\d)", text) for s in _number_spellings(value))


def test_every_runnable_protocol_has_a_recipe():
    missing = [
        f"{_raw(p)['paper']}/{name}"
        for p in FILES
        for name, proto in _raw(p)["protocols"].items()
        if not proto.get("config_only", False) and "recipe" not in proto
    ]
    assert not missing, f"protocols without a recipe block: {missing}"


@pytest.mark.parametrize("paper, protocol, key, dataset, value", _recipe_cases(), ids=str)
def test_recipe_numbers_are_in_the_paper_text(paper, protocol, key, dataset, value):
    assert _number_in_text(_paper_text(paper), value), (
        f"{paper}/{protocol} recipe {key} = {value} ({dataset or 'all data sets'}) is not printed in "
        f"{PAPERS[paper]}"
    )


@pytest.mark.parametrize(
    "text, value, found",
    [
        ("momentum of 0.9, and weight decay of 0.0001;", 0.0001, True),
        ("weight decay of 10^{-4} and batch size of 128.", 0.0001, True),
        ("weight decay of 10^{-4} and batch size of 128.", 128, True),
        ("batch size of 1280", 128, False),
        ("learning rate 0.15", 0.1, False),
        ("learning rate 10.1", 0.1, False),
        ("learning rate 0.5", 0.05, False),
    ],
)
def test_recipe_number_check_can_fail(text, value, found):
    assert _number_in_text(text, value) is found


def test_recipes_are_carried_into_references_and_claims():
    jia3 = {r.dataset: r.recipe["batch_size"] for r in REFS if r.paper == "jia2017" and r.table == "table3"}
    assert jia3 == {"cifar10": 64, "cifar100": 128}  # "batchsize of 64 for CIFAR10 and 128 for CIFAR100"
    for item in [*REFS, *CLAIMS]:
        assert set(item.recipe) == set(RECIPE_KEYS), item
        assert not any(isinstance(v, dict) for v in item.recipe.values()), item
    z1 = next(r for r in REFS if r.paper == "zaeemzadeh2020" and r.table == "table1")
    assert z1.recipe == {
        "batch_size": 128,
        "optimizer": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "nesterov": None,
        "weight_decay": 0.0001,
        "init": "he",
        "preprocess": "per_channel",
        "augment": "shift_flip",
    }


def test_recipe_is_optional_and_defaults_to_empty(tmp_path, good_doc):
    path = _write(tmp_path, good_doc)
    assert parse_reference_file(path)[0].recipe == {}
    assert parse_claims_file(path)[0].recipe == {}


_GOOD_RECIPE = dict.fromkeys(RECIPE_KEYS)


@pytest.mark.parametrize(
    "recipe, message",
    [
        ({**_GOOD_RECIPE, "schedule": "step"}, "schedule"),
        ({k: v for k, v in _GOOD_RECIPE.items() if k != "lr"}, "lr"),
        ({**_GOOD_RECIPE, "optimizer": "lbfgs"}, "recipe"),
        ({**_GOOD_RECIPE, "batch_size": "128"}, "recipe"),
        ({**_GOOD_RECIPE, "nesterov": "yes"}, "recipe"),
        ({**_GOOD_RECIPE, "preprocess": "zca"}, "recipe"),
        ({**_GOOD_RECIPE, "batch_size": {"svhn": 64}}, "recipe"),
    ],
)
def test_schema_rejects_bad_recipes(tmp_path, good_doc, recipe, message):
    doc = copy.deepcopy(good_doc)
    doc["protocols"]["table1"]["recipe"] = recipe
    with pytest.raises(ReferenceError, match=message):
        parse_reference_file(_write(tmp_path, doc))


def test_docs_define_every_recipe_word():
    text = DOCS.read_text()
    words = set()
    for p in FILES:
        for proto in _raw(p)["protocols"].values():
            for key in ("optimizer", "init", "preprocess", "augment"):
                v = (proto.get("recipe") or {}).get(key)
                words |= {w for w in (v.values() if isinstance(v, dict) else [v]) if w is not None}
    undocumented = sorted(w for w in words if f"`{w}`" not in text)
    assert not undocumented, f"recipe values not defined in {DOCS.name}: {undocumented}"
