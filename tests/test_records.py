"""The metrics-log record schema (issue 18): every record the trainer and the Fig. 2 study write is valid, and
a record that is not is refused with the file, line and field named."""

import json

import pytest
from conftest import epoch_records
from jsonschema import Draft202012Validator

from normbench.config import run_config, run_specs, validate_config
from normbench.runs.records import RECORD_KINDS, RecordError, check_record, json_safe, record_schema


def test_the_schema_is_a_valid_json_schema_with_one_branch_per_kind():
    Draft202012Validator.check_schema(record_schema())
    kinds = [b["properties"]["kind"]["const"] for b in record_schema()["oneOf"]]
    assert tuple(kinds) == RECORD_KINDS


def test_every_record_of_a_trained_run_is_valid(tiny_config, tmp_path):
    from normbench.training.trainer import train_run

    tiny_config["experiments"]["gap"]["models"] = ["plain20"]
    tiny_config["experiments"]["gap"]["seeds"] = [0]
    tiny_config["experiments"]["gap"]["probes"] = {"names": ["grad_norm_ratio"], "every": 1}
    config = validate_config(tiny_config)
    train_run(run_config(config, run_specs(config)[0]), tmp_path / "r", log=lambda m: None)
    lines = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    kinds = set()
    for i, line in enumerate(lines):
        rec = json.loads(line)
        check_record(rec, f"metrics.jsonl:{i + 1}")
        kinds.add(rec["kind"])
    assert {"epoch", "probe"} <= kinds


def test_hand_made_records_of_every_kind_are_valid():
    for rec in epoch_records([50.0, 40.0], [55.0, 45.0]):
        check_record(rec)
    check_record({"kind": "probe", "epoch": 0, "probes": {"x": [1.0]}, "seconds": {"x": 0.1}})
    check_record(
        {"kind": "diverged", "epoch": 3, "iteration": 120, "reason": "non-finite", "window": [110, 120]}
    )
    check_record(json_safe({"kind": "eval_health", "epoch": 2, "test_loss": float("nan"), "reason": "nan"}))
    check_record(json_safe({**epoch_records([1.0], [2.0])[0], "test_loss": float("inf")}))


BAD = [
    ({"kind": "epochs", "epoch": 1}, "unknown record kind 'epochs'"),
    ({"epoch": 1}, "unknown record kind None"),
    ("[1, 2]", "unknown record kind 'str'"),
    (
        {k: v for k, v in epoch_records([1.0], [2.0])[0].items() if k != "test_error"},
        "'test_error' is a required",
    ),
    ({**epoch_records([1.0], [2.0])[0], "train_error": 250.0}, "field train_error"),
    ({**epoch_records([1.0], [2.0])[0], "epoch": -1}, "field epoch"),
    ({**epoch_records([1.0], [2.0])[0], "test_loss": "Infinity"}, "field test_loss"),
    ({"kind": "diverged", "epoch": 1, "iteration": 2}, "'reason' is a required"),
    ({"kind": "probe", "epoch": 1, "probes": {}, "typo": 1}, "typo"),
    ({"kind": "eval_health", "epoch": 1, "test_loss": 1.0, "reason": 3}, "field reason"),
]


@pytest.mark.parametrize("record,message", BAD)
def test_a_bad_record_is_refused_with_its_place_and_field(record, message):
    with pytest.raises(RecordError) as err:
        check_record(record, "run/metrics.jsonl:7")
    assert str(err.value).startswith("run/metrics.jsonl:7: ") and message in str(err.value), str(err.value)


def test_the_run_folder_reader_checks_every_record(tmp_path):
    """read_records refuses a schema-invalid line (not only a non-JSON one), naming file and line."""
    from normbench.runs.folder import read_records
    from normbench.runs.records import record_line

    good = epoch_records([1.0, 0.9], [2.0, 1.9])
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(record_line(r) for r in good))
    assert read_records(path) == good
    path.write_text(
        record_line(good[0]) + json.dumps({"kind": "epohc", "epoch": 2}) + "\n" + record_line(good[1])
    )
    with pytest.raises(RecordError, match=r"metrics.jsonl:2: unknown record kind 'epohc'"):
        read_records(path)
