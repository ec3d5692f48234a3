"""Data sets behind one interface: the embedded digits, and torchvision's real loaders on fixture files."""

import pickle
import struct

import numpy as np
import pytest
import torch

from normbench.training.data import DataError, augment, load_dataset, load_prepared, normalize, save_prepared


def test_digits_split_and_shapes():
    data = load_dataset("digits")
    assert data.train_x.shape == (1437, 1, 16, 16) and data.test_x.shape == (360, 1, 16, 16)
    assert data.train_x.dtype == torch.uint8 and data.num_classes == 10
    assert int(data.train_x.max()) == 255
    # stratified: every class in both splits, in about the same proportion
    counts = torch.bincount(data.test_y, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37
    # normalisation statistics are those of the training images
    x = normalize(data.train_x, data.mean, data.std)
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-3


def test_digits_native_size():
    assert load_dataset("digits", image_size=8).train_x.shape[-1] == 8


def test_prepared_roundtrip(tmp_path):
    data = load_dataset("digits", image_size=8)
    save_prepared(data, tmp_path / "d.pt")
    back = load_prepared(tmp_path / "d.pt")
    assert torch.equal(back.train_x, data.train_x) and back.mean == data.mean


def test_unreadable_prepared_file_is_named(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="bad.pt"):
        load_prepared(bad)


def _write_idx(path, array, magic):
    with open(path, "wb") as fh:
        fh.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape))
        fh.write(array.astype(np.uint8).tobytes())


def test_mnist_through_torchvision(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 20), ("t10k", 10)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), 2051)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10, 2049)
    data = load_dataset("mnist", tmp_path)
    assert data.train_x.shape == (20, 1, 28, 28) and data.test_x.shape == (10, 1, 28, 28)
    assert data.train_y.tolist() == [i % 10 for i in range(20)]


@pytest.fixture
def skip_cifar_md5(monkeypatch):
    """Fixture files cannot have the real archives' MD5 sums: accept them, keep torchvision's parsing."""
    import torchvision.datasets.cifar as cifar

    monkeypatch.setattr(cifar.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)


def _pickle(path, obj):
    with open(path, "wb") as fh:
        pickle.dump(obj, fh)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_through_torchvision(tmp_path, skip_cifar_md5, name):
    rng = np.random.default_rng(0)
    if name == "cifar10":
        folder, label_key, meta, meta_key = "cifar-10-batches-py", "labels", "batches.meta", "label_names"
        files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        classes = 10
    else:
        folder, label_key, meta, meta_key = "cifar-100-python", "fine_labels", "meta", "fine_label_names"
        files, classes = ["train", "test"], 100
    root = tmp_path / folder
    root.mkdir()
    for f in files:
        _pickle(root / f, {"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), label_key: [1, 2, 3, 4]})
    _pickle(root / meta, {meta_key: [f"c{i}" for i in range(classes)]})
    data = load_dataset(name, tmp_path)
    n_train = 4 * (len(files) - 1)
    assert data.train_x.shape == (n_train, 3, 32, 32) and data.test_x.shape == (4, 3, 32, 32)
    assert data.num_classes == classes and data.channels == 3


def test_missing_root_without_download_names_root(tmp_path):
    with pytest.raises(DataError, match=rf"{tmp_path}.*download"):
        load_dataset("cifar10", tmp_path / "nowhere")


def test_unknown_dataset_lists_valid():
    with pytest.raises(DataError, match="valid data sets are: cifar10, cifar100, digits, imagenet, mnist"):
        load_dataset("svhn")


def test_augment_identity_without_pad_or_flip():
    x = torch.randint(0, 256, (8, 3, 6, 6), dtype=torch.uint8)
    assert torch.equal(augment(x, 0, False), x)


def test_augment_is_a_per_sample_translation_or_flip():
    """Every output is the input shifted by (dy, dx) in [-pad, pad] (zero fill), possibly flipped."""
    pad = 2
    x = torch.randint(1, 256, (64, 1, 7, 7), dtype=torch.uint8)
    out = augment(x, pad, True, torch.Generator().manual_seed(0))
    shifts = set()
    for img, res in zip(x, out):
        padded = torch.nn.functional.pad(img, (pad, pad, pad, pad))
        found = [
            (dy, dx, flip)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            for flip in (False, True)
            if torch.equal((padded.flip(-1) if flip else padded)[:, dy : dy + 7, dx : dx + 7], res)
        ]
        assert found, "output is not a shifted/flipped copy of its input"
        shifts.add(found[0])
    assert len(shifts) > 10  # draws differ per sample


def test_augment_statistics_match_the_recipe():
    """Offsets uniform on {0..2*pad}, flips with probability 1/2 (checked on a marker image)."""
    n, pad = 4000, 4
    x = torch.zeros(n, 1, 9, 9, dtype=torch.uint8)
    x[:, 0, 4, 0] = 255  # marker at row 4, column 0: flip sends it to column 8
    out = augment(x, pad, True, torch.Generator().manual_seed(1))
    pos = (out[:, 0] == 255).nonzero()
    # samples whose marker stayed in the image: its row gives the vertical offset
    rows = torch.bincount(pos[:, 1], minlength=9).float()
    assert rows.sum() > 0.4 * n
    freq = rows / rows.sum()
    assert torch.all((freq - 1 / 9).abs() < 0.03)
    cols = pos[:, 2]
    cols = cols[cols != 4]  # column 4 is reached both unflipped (offset 4) and flipped (offset 0)
    flipped = (cols > 4).float().mean()  # a flipped marker lands in the right half
    assert abs(float(flipped) - 0.5) < 0.05


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_augment_on_gpu_equals_cpu():
    """The draws are made on the CPU generator and the gather runs on the device: same images on CUDA."""
    x = torch.randint(0, 256, (256, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    cpu = augment(x, 4, True, torch.Generator().manual_seed(5))
    gpu = augment(x.cuda(), 4, True, torch.Generator().manual_seed(5))
    assert gpu.is_cuda and torch.equal(gpu.cpu(), cpu)
