"""Recipe keys ``init`` and ``preprocess``: known answers, schema checks, and their record in config.json."""

import json

import pytest
import torch
from torch import nn

from normbench.config import ConfigError, run_config, run_specs, validate_config
from normbench.methods import build_method
from normbench.models import build_model
from normbench.models.layers import apply_init, init_orthogonal, weight_layers
from normbench.training.batches import TensorBatches
from normbench.training.data import ImageData, Preprocessor, load_dataset, pixel_stats
from normbench.training.trainer import train_run


class Shapes(nn.Module):
    """Wide (6 x 27), tall (40 x 18), square (8 x 8) conv matrices and a wide and a tall linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.wide = nn.Conv2d(3, 6, 3)
        self.tall = nn.Conv2d(2, 40, 3)
        self.square = nn.Conv2d(8, 8, 1)
        self.fc_wide = nn.Linear(20, 5)
        self.fc_tall = nn.Linear(4, 9)
        self.bn = nn.BatchNorm2d(6)


def _svals(w: torch.Tensor) -> torch.Tensor:
    return torch.linalg.svdvals(w.detach().double().reshape(w.shape[0], -1))


def test_orthogonal_init_gives_unit_singular_values():
    torch.manual_seed(0)
    model = Shapes()
    init_orthogonal(model)
    for name, m in weight_layers(model):
        w = m.weight.detach().double().reshape(m.weight.shape[0], -1)
        s = _svals(m.weight)
        # min(N_out, row length) singular values, all 1: rows orthonormal when square/wide (W W^T = I),
        # columns orthonormal when tall (W^T W = I)
        assert len(s) == min(w.shape), name
        torch.testing.assert_close(s, torch.ones_like(s), atol=1e-5, rtol=0)
        gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        torch.testing.assert_close(gram, torch.eye(len(gram), dtype=gram.dtype), atol=1e-5, rtol=0)


def test_orthogonal_init_of_a_registry_network_and_he_leaves_it():
    torch.manual_seed(0)
    model = build_model("convnet20", num_classes=10, in_channels=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    apply_init(model, "he")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    apply_init(model, "orthogonal")
    layers = weight_layers(model)
    assert any(isinstance(m, nn.Linear) for _, m in layers) and len(layers) > 10
    for _, m in layers:
        s = _svals(m.weight)
        torch.testing.assert_close(s, torch.ones_like(s), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="init"):
        apply_init(model, "xavier")


def test_svb_no_longer_reinitialises_unless_asked():
    torch.manual_seed(0)
    model = Shapes()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    build_method("svb", {"svb": {"eps": 0.5}}).attach(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # the same draws as the recipe's init: orthogonal, from the same generator state
    torch.manual_seed(3)
    a = Shapes()
    torch.manual_seed(3)
    b = Shapes()
    torch.manual_seed(4)
    build_method("svb", {"svb": {"init": "orthogonal"}}).attach(a)
    torch.manual_seed(4)
    apply_init(b, "orthogonal")
    assert all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def _images() -> ImageData:
    g = torch.Generator().manual_seed(0)
    train = torch.randint(0, 256, (50, 3, 5, 4), generator=g, dtype=torch.uint8)
    train[:, 1, 0, 0] = 7  # a constant pixel: std 0
    test = torch.randint(0, 256, (10, 3, 5, 4), generator=g, dtype=torch.uint8)
    pix = train.float() / 255
    return ImageData(
        name="toy",
        train_x=train,
        train_y=torch.zeros(50, dtype=torch.int64),
        test_x=test,
        test_y=torch.zeros(10, dtype=torch.int64),
        num_classes=2,
        mean=tuple(pix.mean(dim=(0, 2, 3)).tolist()),
        std=tuple(pix.std(dim=(0, 2, 3)).tolist()),
    )


def test_preprocess_none_is_pixels_over_255():
    data = _images()
    out = Preprocessor(data, "none")(data.test_x)
    assert out.dtype == torch.float32
    assert torch.equal(out, data.test_x.to(torch.float32) / 255.0)
    assert out.min() >= 0 and out.max() <= 1


def test_per_pixel_statistics_have_the_image_shape_and_standardise_the_training_set():
    data = _images()
    mean, std = pixel_stats(data.train_x, chunk=7)  # chunks do not change the statistics
    assert mean.shape == std.shape == (3, 5, 4)
    pix = data.train_x.double() / 255
    torch.testing.assert_close(mean.double(), pix.mean(0), atol=1e-7, rtol=0)
    assert std[1, 0, 0] == 1 and mean[1, 0, 0] == pytest.approx(7 / 255)
    out = Preprocessor(data, "per_pixel")(data.train_x).double()
    torch.testing.assert_close(out.mean(0), torch.zeros(3, 5, 4, dtype=torch.float64), atol=1e-5, rtol=0)
    sd = out.std(0)
    sd[1, 0, 0] = 1.0  # the constant pixel maps to 0 (std 0)
    torch.testing.assert_close(sd, torch.ones(3, 5, 4, dtype=torch.float64), atol=1e-5, rtol=0)
    assert torch.all(out[:, 1, 0, 0] == 0)


def test_per_channel_is_the_previous_normalisation():
    from normbench.training.data import normalize

    data = _images()
    assert torch.equal(
        Preprocessor(data, "per_channel")(data.test_x), normalize(data.test_x, data.mean, data.std)
    )
    batches = TensorBatches(data, torch.device("cpu"), 16, {"pad": 0, "flip": False})
    x, _ = batches.probe_batch(8)
    raw = TensorBatches(data, torch.device("cpu"), 16, {"pad": 0, "flip": False}, preprocess="none")
    xr, _ = raw.probe_batch(8)
    assert not torch.equal(x, xr) and xr.min() >= 0 and xr.max() <= 1


def test_digits_per_pixel_has_no_division_by_zero():
    data = load_dataset("digits", image_size=8)
    x = Preprocessor(data, "per_pixel")(data.test_x)
    assert x.shape[1:] == (1, 8, 8) and torch.isfinite(x).all()


@pytest.mark.parametrize("key,value", [("init", "xavier"), ("preprocess", "zca")])
def test_schema_rejects_unknown_values_naming_the_key(tiny_config, key, value):
    tiny_config["experiments"]["gap"][key] = value
    with pytest.raises(ConfigError, match=rf"experiments\.gap\.{key}: '{value}' is not one of"):
        validate_config(tiny_config)


def test_defaults_and_run_config_record_both_keys(tiny_config):
    config = validate_config(tiny_config)
    cfg = run_config(config, run_specs(config)[0])
    assert cfg["init"] == "he" and cfg["preprocess"] == "per_channel"
    tiny_config["experiments"]["gap"].update(init="orthogonal", preprocess="per_pixel")
    config = validate_config(tiny_config)
    cfg = run_config(config, run_specs(config)[0])
    assert cfg["init"] == "orthogonal" and cfg["preprocess"] == "per_pixel"


def test_per_pixel_is_refused_for_streamed_imagenet(tiny_config):
    tiny_config["experiments"]["gap"].update(dataset="imagenet", preprocess="per_pixel", augment={"pad": 0})
    with pytest.raises(ConfigError, match=r"experiments\.gap\.preprocess: per_pixel"):
        validate_config(tiny_config)


def test_paper_config_sets_the_papers_protocols(repo):
    from normbench.config import load_config

    exps = load_config(repo / "config" / "paper.yaml")["experiments"]
    for name, exp in exps.items():
        if name.startswith("jia2017"):
            assert (exp["init"], exp["preprocess"]) == ("orthogonal", "none"), name
        elif name.startswith("xie2017") and exp["dataset"] != "imagenet":
            assert (exp["init"], exp["preprocess"]) == ("he", "per_pixel"), name
        elif name.startswith("xie2017"):  # Sec. 5.4: "(x - 255 * mean) * 0.017" on ImageNet
            assert (exp["init"], exp["preprocess"]) == ("he", "mean_rgb_scaled"), name
        else:
            assert (exp["init"], exp["preprocess"]) == ("he", "per_channel"), name


def test_config_json_records_both_keys_and_the_init_is_applied(tiny_config, tmp_path):
    tiny_config["experiments"]["gap"].update(
        models=["plain20"], seeds=[0], epochs=1, init="orthogonal", preprocess="none"
    )
    config = validate_config(tiny_config)
    cfg = run_config(config, run_specs(config)[0])
    out = tmp_path / "run"
    train_run(cfg, out, log=lambda m: None)
    saved = json.loads((out / "config.json").read_text())
    assert saved["init"] == "orthogonal" and saved["preprocess"] == "none" and saved == cfg
