"""ResNeXt-164 as the ResNeXt paper [34] builds it (post-activation), and its pre-activation variant."""

from pathlib import Path

import torch
import yaml
from torch import nn

from normbench.models import MODELS, build_model, count_params
from normbench.models.imagenet import Bottleneck
from normbench.models.preact import PreActBottleneck

REPO = Path(__file__).resolve().parents[1]


def test_resnext164_is_post_activation_4x8d():
    model = build_model("resnext164")
    blocks = list(model.blocks)
    assert len(blocks) == 54 and all(isinstance(b, Bottleneck) for b in blocks)
    # cardinality 4, bottleneck (grouped) widths 32/64/128, outputs 64/128/256
    assert {b.conv2.groups for b in blocks} == {4}
    assert [blocks[i].conv2.in_channels for i in (0, 18, 36)] == [32, 64, 128]
    assert [blocks[i].conv3.out_channels for i in (0, 18, 36)] == [64, 128, 256]
    # stride on the grouped 3x3 of the first block of stages 2-3; 1x1 + BN projections where the shape changes
    assert [blocks[i].conv2.stride for i in (0, 18, 36)] == [(1, 1), (2, 2), (2, 2)]
    shortcuts = [i for i, b in enumerate(blocks) if b.shortcut is not None]
    assert shortcuts == [0, 18, 36]
    assert all(isinstance(blocks[i].shortcut[1], nn.BatchNorm2d) for i in shortcuts)
    assert count_params(model) == 2_475_354
    assert MODELS["resnext164"].depth == 164


def test_post_activation_block_ends_with_relu_after_the_sum():
    torch.manual_seed(0)
    block = build_model("resnext164").blocks[1].eval()
    x = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        y = block(x)
        expected = torch.relu(
            block.bn3(block.conv3(block.relu(block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x))))))))
            + x
        )
    assert torch.equal(y, expected) and (y >= 0).all()


def test_preact_variant_is_kept_by_name():
    model = build_model("preact_resnext164")
    assert all(isinstance(b, PreActBottleneck) for b in model.blocks)
    assert {b.conv2.groups for b in model.blocks} == {4}
    assert count_params(model) == 2_474_458


def test_oyedotun_experiments_train_the_post_activation_resnext():
    doc = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    oye = {k: v for k, v in doc["experiments"].items() if k.startswith("oyedotun2020_table")}
    cifar = [v for k, v in oye.items() if "imagenet" not in k]
    assert cifar and all(
        "resnext164" in v["models"] and "preact_resnext164" not in v["models"] for v in cifar
    )
    refs = yaml.safe_load((REPO / "normbench" / "references" / "oyedotun2020.yaml").read_text())
    assert "preact_resnext164" not in yaml.safe_dump(refs)
