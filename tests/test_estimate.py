"""GPU-hours estimates: measured throughputs used as given, others scaled by FLOPs, ImageNet never scaled."""

import json
import math

import pytest

from normbench.cli.main import main
from normbench.config import validate_config
from normbench.studies.estimate import Throughputs, estimate, forward_flops, per_table


@pytest.fixture
def config(tiny_config):
    tiny_config["experiments"]["gap"].update(dataset="cifar10", image_size=None, epochs=10)
    tiny_config["experiments"]["big"] = {
        **tiny_config["experiments"]["gap"],
        "reproduces": ["zaeemzadeh2020/table1", "zaeemzadeh2020/fig3"],
        "models": ["imagenet_resnet101"],
        "dataset": "imagenet",
        "image_size": 64 + 32,
        "augment": {"pad": 0},
    }
    return validate_config(tiny_config)


def test_measured_throughput_gives_images_times_epochs_times_runs(config):
    tp = Throughputs({"plain20": 1000.0, "preact_resnet20": 500.0}, "test", reference="plain20")
    rows = {r["model"]: r for r in estimate(config, tp)}
    # 50,000 CIFAR images x 10 epochs x 2 seeds
    assert rows["plain20"]["gpu_hours"] == pytest.approx(50_000 * 10 * 2 / 1000.0 / 3600)
    assert rows["preact_resnet20"]["gpu_hours"] == pytest.approx(50_000 * 10 * 2 / 500.0 / 3600)
    assert rows["plain20"]["source"].startswith("measured")
    assert math.isnan(rows["imagenet_resnet101"]["gpu_hours"])  # 96 px: never scaled from 32 px
    assert "not measured" in rows["imagenet_resnet101"]["source"]


def test_unmeasured_model_is_scaled_by_flops(config):
    tp = Throughputs({"plain20": 1000.0}, "test", reference="plain20")
    rows = {r["model"]: r for r in estimate(config, tp)}
    ratio = forward_flops("plain20", 3, 32) / forward_flops("preact_resnet20", 3, 32)
    assert rows["preact_resnet20"]["images_per_s"] == pytest.approx(1000.0 * ratio)
    assert "scaled by FLOPs" in rows["preact_resnet20"]["source"]
    tables = {t["table"]: t for t in per_table(rows.values())}
    assert tables["zaeemzadeh2020/table1"]["experiments"] == 2
    assert (tables["zaeemzadeh2020/fig3"]["gpu_hours"], tables["zaeemzadeh2020/fig3"]["unestimated"]) == (
        0,
        1,
    )


def test_reference_must_be_measured():
    with pytest.raises(ValueError, match="no measured throughput"):
        Throughputs({"plain20": 1.0}, "test", reference="preact_resnet164")


def test_cli_prints_tables_and_writes_json(config, tmp_path, capsys, tiny_config):
    import yaml

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config))
    out = tmp_path / "e.json"
    main(["estimate", "--config", str(cfg), "--throughput", "plain20=2000", "--reference", "plain20",
          "--json", str(out)])  # fmt: skip
    text = capsys.readouterr().out
    assert "GPU-hours" in text and "zaeemzadeh2020/table1" in text and "1 rows not estimated" in text
    doc = json.loads(out.read_text())
    plain = next(r for r in doc["rows"] if r["model"] == "plain20")
    assert plain["gpu_hours"] == pytest.approx(50_000 * 10 * 2 / 2000.0 / 3600)
    assert any(r["gpu_hours"] is None for r in doc["rows"])


def test_bench_rows_are_filtered_by_precision_and_pack(tmp_path):
    from normbench.studies.estimate import read_bench

    rows = [
        {"model": "m", "engine": "eager", "precision": "fp32", "pack": 1, "images_per_s": 100.0},
        {"model": "m", "engine": "fast", "precision": "fp32", "pack": 1, "images_per_s": 300.0},
        {"model": "m", "engine": "fast", "precision": "bf16", "pack": 1, "images_per_s": 500.0},
        {"model": "m", "engine": "fast", "precision": "fp32", "pack": 4, "images_per_s": 900.0},
    ]
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"rows": rows}))
    assert read_bench(path) == {"m": 300.0}  # fp32, one run per process: what a reproduction runs
    assert read_bench(path, "eager") == {"m": 100.0}
    assert read_bench(path, precision="bf16") == {"m": 500.0}
    assert read_bench(path, pack=4) == {"m": 900.0}


@pytest.mark.parametrize(
    "model,channels,size", [("plain20", 3, 32), ("preact_resnext164", 3, 32), ("fig2_probe", 3, 32)]
)
def test_forward_flops_match_the_dispatch_counter(model, channels, size):
    """The hook count (convolutions and linear layers, batch norm skipped) is torch's own FLOP count."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from normbench.models.registry import get_model_info
    from normbench.models.summary import build_meta
    from normbench.studies.estimate import forward_flops

    net = build_meta(get_model_info(model), 10, channels)
    with FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, channels, size, size, device="meta"))
    assert forward_flops(model, channels, size) == float(counter.get_total_flops()) > 0


def test_forward_flops_known_answer():
    """A hand count for plain20 (bottleneck blocks 1x1-3x3-1x1, two per stage, widths 16/32/64, x4 out):
    a convolution costs 2 C_out H W C_in k^2, the classifier 2 in out."""
    from normbench.studies.estimate import forward_flops

    def conv(c_in, c_out, k, size):  # size: the output's side
        return 2 * c_out * size * size * c_in * k * k

    stage = []
    for width, size, c_in, first_size in ((16, 32, 16, 32), (32, 16, 64, 32), (64, 8, 128, 16)):
        # first block: 1x1 at the input's size, 3x3 (stride 2 from stage 2 on), 1x1 to 4x width
        stage += [
            conv(c_in, width, 1, first_size),
            conv(width, width, 3, size),
            conv(width, 4 * width, 1, size),
        ]
        stage += [
            conv(4 * width, width, 1, size),
            conv(width, width, 3, size),
            conv(width, 4 * width, 1, size),
        ]
    expected = conv(3, 16, 3, 32) + sum(stage) + 2 * 256 * 10
    assert forward_flops("plain20", 3, 32) == expected
