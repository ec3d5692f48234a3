"""Batch sources: in-memory tensors and streamed image folders (ImageNet layout, on fixture images)."""

import numpy as np
import pytest
import torch
from PIL import Image

from normbench.config import ConfigError, run_config, run_specs, validate_config
from normbench.models.registry import MODELS
from normbench.runs.folder import read_records, summarize, without_timing
from normbench.training.batches import FolderBatches, TensorBatches, make_batches
from normbench.training.data import DataError, FolderData, load_dataset, load_prepared, save_prepared
from normbench.training.trainer import train_pack, train_run

CLASSES = ["n01440764", "n01443537", "n01484850"]
AUG = {"pad": 0, "flip": True}


def write_image_folders(root, per_class=(5, 2), size=(40, 48)):
    """``<root>/imagenet/{train,val}/<wnid>/*.JPEG``: random RGB images, ``per_class`` per split."""
    rng = np.random.default_rng(0)
    for split, count in zip(("train", "val"), per_class, strict=True):
        for c in CLASSES:
            folder = root / "imagenet" / split / c
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{c}_{i}.JPEG")
    return root


@pytest.fixture
def imagenet_root(tmp_path):
    return write_image_folders(tmp_path / "data")


def test_imagenet_manifest_counts_and_roundtrips(imagenet_root, tmp_path):
    data = load_dataset("imagenet", imagenet_root, image_size=16)
    assert isinstance(data, FolderData)
    assert (data.num_train, data.num_test, data.num_classes, data.channels) == (15, 6, 3, 3)
    assert data.classes == CLASSES and data.image_size == 16
    save_prepared(data, tmp_path / "imagenet.pt")
    assert load_prepared(tmp_path / "imagenet.pt") == data


def test_missing_imagenet_names_the_folder_and_layout(tmp_path):
    with pytest.raises(DataError, match=r"no folder .*imagenet/train.*<class>/<image>"):
        load_dataset("imagenet", tmp_path)
    with pytest.raises(DataError, match="cannot be downloaded"):
        load_dataset("imagenet", tmp_path, download=True)


def test_imagenet_class_mismatch_is_named(imagenet_root):
    (imagenet_root / "imagenet" / "val" / CLASSES[0]).rename(imagenet_root / "imagenet" / "val" / "n99")
    with pytest.raises(DataError, match="different class folders.*n99"):
        load_dataset("imagenet", imagenet_root)


def _epoch(batches, seed):
    return [(x.clone(), y.clone()) for x, y in batches.train_epoch(torch.Generator().manual_seed(seed))]


def test_folder_batches_shapes_normalisation_and_last_batch(imagenet_root):
    data = load_dataset("imagenet", imagenet_root, image_size=16)
    batches = make_batches(data, torch.device("cpu"), 4, AUG, workers=0)
    assert isinstance(batches, FolderBatches)
    epoch = _epoch(batches, 0)
    assert [len(y) for _, y in epoch] == [4, 4, 4, 3]  # drop_last=False
    assert all(x.shape[1:] == (3, 16, 16) and x.dtype == torch.float32 for x, _ in epoch)
    assert sorted(torch.cat([y for _, y in epoch]).tolist()) == [0] * 5 + [1] * 5 + [2] * 5
    test = list(batches.test_batches())
    assert sum(len(y) for _, y in test) == 6
    px, py = batches.probe_batch(5)
    assert px.shape == (5, 3, 16, 16) and len(py) == 5


def test_folder_batches_reproducible_and_independent_of_workers(imagenet_root):
    data = load_dataset("imagenet", imagenet_root, image_size=16)
    one = _epoch(FolderBatches(data, torch.device("cpu"), 4, AUG, workers=0), 7)
    two = _epoch(FolderBatches(data, torch.device("cpu"), 4, AUG, workers=2), 7)
    other = _epoch(FolderBatches(data, torch.device("cpu"), 4, AUG, workers=0), 8)
    for (x1, y1), (x2, y2) in zip(one, two, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(one, other, strict=True))


def test_folder_augmentation_draws_per_sample(imagenet_root):
    """The same image, seen in two epochs, gets two different random-resized crops."""
    data = load_dataset("imagenet", imagenet_root, image_size=16)
    batches = FolderBatches(data, torch.device("cpu"), 15, AUG, workers=0)
    gen = torch.Generator().manual_seed(0)
    (x1, _), (x2, _) = next(batches.train_epoch(gen)), next(batches.train_epoch(gen))
    assert not torch.equal(x1.sum((1, 2, 3)).sort().values, x2.sum((1, 2, 3)).sort().values)


def test_padding_is_refused_for_image_folders(imagenet_root, tiny_config):
    data = load_dataset("imagenet", imagenet_root, image_size=16)
    with pytest.raises(ValueError, match="augment.pad"):
        FolderBatches(data, torch.device("cpu"), 4, {"pad": 4, "flip": True})
    tiny_config["experiments"]["gap"].update(dataset="imagenet", image_size=16, augment={"pad": 4})
    with pytest.raises(ConfigError, match=r"experiments.gap.augment.pad: imagenet"):
        validate_config(tiny_config)


def test_tensor_batches_cover_the_training_set():
    data = load_dataset("digits", image_size=8)
    batches = TensorBatches(data, torch.device("cpu"), 500, {"pad": 1, "flip": True})
    ys = torch.cat([y for _, y in batches.train_epoch(torch.Generator().manual_seed(0))])
    assert torch.equal(ys.sort().values, data.train_y.sort().values)


def _imagenet_run(tiny_config, root, model):
    exp = tiny_config["experiments"]["gap"]
    exp.update(
        dataset="imagenet", paper_dataset="imagenet", image_size=32, models=[model], seeds=[0], epochs=2,
        batch_size=8, augment={"pad": 0, "flip": True},
    )  # fmt: skip
    tiny_config["data"] = {"root": str(root), "workers": 0}
    config = validate_config(tiny_config)
    return run_config(config, run_specs(config)[0])


def test_train_run_streams_imagenet_folders(imagenet_root, tiny_config, tmp_path):
    cfg = _imagenet_run(tiny_config, imagenet_root, "preact_resnet20")
    out = tmp_path / "run"
    train_run(cfg, out, log=lambda m: None)
    records = read_records(out / "metrics.jsonl")
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert len(epochs) == 2 and epochs[0]["steps"] == 2  # 15 images, batch 8
    assert 0.0 <= epochs[-1]["test_top5_error"] <= epochs[-1]["test_error"]
    assert summarize(records)["final_test_top5_error"] == epochs[-1]["test_top5_error"]
    again = tmp_path / "again"
    train_run(cfg, again, log=lambda m: None)
    assert without_timing(read_records(again / "metrics.jsonl")) == without_timing(records)
    # the fast engine and a pack of two seeds stream the same batches and give the same metrics
    cfg["engine"]["name"] = "fast"
    train_pack([(cfg, tmp_path / "fast"), ({**cfg, "seed": 1}, tmp_path / "fast1")], log=lambda m: None)
    assert without_timing(read_records(tmp_path / "fast" / "metrics.jsonl")) == without_timing(records)


@pytest.mark.slow
@pytest.mark.parametrize("model", [m for m, info in MODELS.items() if info.family == "imagenet"])
def test_imagenet_networks_train_by_name(imagenet_root, tiny_config, tmp_path, model):
    """Every ImageNet network of the registry trains on streamed folders (75 px: Inception's stem minimum)."""
    cfg = _imagenet_run(tiny_config, imagenet_root, model)
    cfg.update(epochs=1, image_size=75)
    train_run(cfg, tmp_path / "run", log=lambda m: None)
    assert read_records(tmp_path / "run" / "metrics.jsonl")[-1]["kind"] == "epoch"


def test_pca_lighting_adds_the_principal_component_offset():
    from normbench.training.batches import IMAGENET_PCA_EIGVAL, IMAGENET_PCA_EIGVEC, PCALighting

    light = PCALighting(0.1)
    offset = light.offset(torch.tensor([1.0, 0.0, 0.0]))
    want = 255 * IMAGENET_PCA_EIGVAL[0] * torch.tensor([row[0] for row in IMAGENET_PCA_EIGVEC])
    assert torch.allclose(offset, want)
    image = torch.full((3, 4, 4), 100, dtype=torch.uint8)
    torch.manual_seed(0)
    shifted = light(image)
    assert shifted.dtype == torch.float32 and not torch.equal(shifted, image.float())
    assert torch.allclose(shifted - shifted[:, :1, :1], torch.zeros(3, 4, 4))  # one offset per channel
    assert torch.equal(PCALighting(0.0)(image), image.float())
    with pytest.raises(ValueError, match="lighting std"):
        PCALighting(-0.1)


def test_resize_random_crops_a_window_of_the_resized_square():
    """Xie Sec. 5.4: a random 224 crop of the 256x256 image ([17]: shorter side 256, central square)."""
    from torchvision.transforms import v2

    from normbench.training.batches import folder_transforms

    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    train, _ = folder_transforms(16, flip=False, crop="resize_random")
    square = v2.Compose([v2.Resize(18, antialias=True), v2.CenterCrop(18), v2.PILToTensor()])(image)
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        crop = train(image)
        assert crop.shape == (3, 16, 16) and crop.dtype == torch.uint8
        where = [
            (i, j) for i in range(3) for j in range(3) if torch.equal(square[:, i : i + 16, j : j + 16], crop)
        ]
        assert where, "the crop is not a window of the 18x18 square"
        seen.update(where)
    assert len(seen) > 1  # the position is random
    with pytest.raises(ValueError, match="augment.crop must be one of"):
        folder_transforms(16, flip=False, crop="centre")


def test_xie_imagenet_recipe_batches(imagenet_root):
    data = load_dataset("imagenet", imagenet_root, image_size=16)
    xie = {"pad": 0, "flip": True, "crop": "resize_random", "lighting": 0.1}
    lit = _epoch(FolderBatches(data, torch.device("cpu"), 4, xie, preprocess="mean_rgb_scaled", workers=0), 3)
    dark = _epoch(
        FolderBatches(
            data, torch.device("cpu"), 4, {**xie, "lighting": 0.0}, workers=0, preprocess="mean_rgb_scaled"
        ),
        3,
    )
    assert all(x.shape[1:] == (3, 16, 16) and x.dtype == torch.float32 for x, _ in lit)
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(lit, dark, strict=True))  # colour offsets
    assert abs(torch.cat([x for x, _ in dark]).mean().item()) < 0.017 * 40  # mean RGB subtracted, x 0.017


def test_mean_rgb_scaled_subtracts_the_mean_and_scales_by_0_017():
    from normbench.training.data import MEAN_RGB_SCALE, Preprocessor

    data = load_dataset("digits", image_size=8)
    pre = Preprocessor(data, "mean_rgb_scaled")
    at_mean = torch.full((1, 1, 8, 8), 255.0 * data.mean[0])
    assert torch.allclose(pre(at_mean), torch.zeros(1, 1, 8, 8), atol=1e-5)
    assert torch.allclose(pre(at_mean + 10), torch.full((1, 1, 8, 8), 10 * MEAN_RGB_SCALE), atol=1e-5)


def test_folder_crops_are_refused_for_tensor_data(tiny_config):
    data = load_dataset("digits", image_size=8)
    with pytest.raises(ValueError, match="augment.crop and augment.lighting are for image folders"):
        TensorBatches(data, torch.device("cpu"), 8, {"pad": 1, "flip": True, "lighting": 0.1})
    tiny_config["experiments"]["gap"]["augment"] = {"crop": "resize_random"}
    with pytest.raises(
        ConfigError, match=r"experiments.gap.augment: crop and lighting are for image folders"
    ):
        validate_config(tiny_config)
