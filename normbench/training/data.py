"""Data sets behind one interface: uint8 image tensors, prepared once, loaded onto any device.

Every data set is turned into a :class:`ImageData`: ``train_x``/``test_x`` uint8 tensors of shape
(N, C, H, W), ``train_y``/``test_y`` int64 labels, and the per-channel mean/std of the training images
(in [0, 1] units) used for normalisation. The recipe's ``preprocess`` (:class:`Preprocessor`) chooses between
those channel statistics, per-pixel statistics (:func:`pixel_stats`) and raw pixels scaled to [0, 1]. Keeping uint8 tensors lets the trainer hold a whole data set on
the GPU and augment it there.

- ``digits``: the UCI handwritten digits that scikit-learn ships (1797 8x8 images, values 0..16). Offline,
  real data for the smoke pipeline and the tests. Scaled to 0..255 and resized bilinearly to
  ``image_size`` (default 16), 1 channel; a fixed stratified split (seed 0) gives 1437 train / 360 test images.
- ``mnist``, ``cifar10``, ``cifar100``: torchvision's own loaders under a configurable data root. Downloading
  is opt-in (``download=True``); torchvision verifies the archive checksums. Without permission and without
  the files, :class:`DataError` names the root and the file that is missing.
- ``imagenet``: too large for memory, so it is not an :class:`ImageData` but a :class:`FolderData` manifest
  (class list, image counts, crop size, channel statistics) of two torchvision ``ImageFolder`` trees,
  ``<root>/imagenet/train/<wnid>/*`` and ``<root>/imagenet/val/<wnid>/*`` (the validation images sorted into
  class folders, as torchvision's ImageNet reference scripts expect). :mod:`normbench.training.batches` streams it
  through a ``DataLoader``. Nothing is downloaded: ImageNet needs a licence, so a user supplies it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from normbench.runs.folder import DATASET_SHAPES, STREAMED_DATASETS


class DataError(RuntimeError):
    """A data set cannot be prepared; the message names the data set, the root and what is missing."""


@dataclass
class ImageData:
    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[-1])

    @property
    def num_train(self) -> int:
        return len(self.train_y)

    @property
    def num_test(self) -> int:
        return len(self.test_y)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# Per-channel mean/std of the ImageNet training images in [0, 1] units: the values torchvision's ImageNet
# models and reference scripts use. Streaming 1.28M JPEGs to recompute them would cost an epoch.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class FolderData:
    """A data set streamed from image folders (ImageNet): what the trainer needs to know before reading it.

    ``image_size`` is the side of the square crops the network sees (224, or 299 for Inception-ResNet-v2);
    training uses random-resized crops and flips, evaluation a resize to 256/224 of it and a centre crop
    (:mod:`normbench.training.batches`).
    """

    name: str
    train_dir: str
    test_dir: str
    classes: list[str]
    num_train: int
    num_test: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channels: int = 3

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict:
        return {"kind": "folder", **{k: getattr(self, k) for k in self.__dataclass_fields__}}


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    num_classes: int
    channels: int
    loader: Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] | None
    description: str

    @property
    def streamed(self) -> bool:
        """Read from image folders batch by batch (:class:`FolderData`) instead of held in memory."""
        return self.name in STREAMED_DATASETS


def _digits(root: Path, download: bool, image_size: int | None):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = (bunch.images * (255.0 / 16.0)).round().astype(np.uint8)[:, None]  # N,1,8,8
    size = image_size or 16
    if size != 8:
        t = F.interpolate(
            torch.from_numpy(images).float(), size=(size, size), mode="bilinear", align_corners=False
        )
        images = t.round().clamp(0, 255).to(torch.uint8).numpy()
    xtr, xte, ytr, yte = train_test_split(
        images, bunch.target, test_size=0.2, random_state=0, stratify=bunch.target
    )
    return xtr, ytr, xte, yte


def _corrupt_archives(cls: type, root: Path) -> list[str]:
    """Downloaded archives of a torchvision data set whose MD5 differs from the one torchvision expects."""
    from torchvision.datasets.utils import check_integrity

    if hasattr(cls, "filename") and hasattr(cls, "tgz_md5"):  # CIFAR-10/100: one archive in the root
        archives = [(root / cls.filename, cls.tgz_md5)]
    else:  # MNIST: one archive per file under <root>/MNIST/raw
        raw = root / cls.__name__ / "raw"
        archives = [(raw / Path(url).name, md5) for url, md5 in getattr(cls, "resources", [])]
    return [
        f"{path} (expected MD5 {md5})"
        for path, md5 in archives
        if path.exists() and not check_integrity(str(path), md5)
    ]


def _torchvision(cls_name: str, expected: str) -> Callable:
    def load(root: Path, download: bool, image_size: int | None):
        import torchvision

        cls = getattr(torchvision.datasets, cls_name)
        try:
            train = cls(str(root), train=True, download=download)
            test = cls(str(root), train=False, download=download)
        except RuntimeError as err:  # torchvision: "Dataset not found or corrupted. ..."
            bad = _corrupt_archives(cls, Path(root))
            if bad:
                raise DataError(
                    f"{cls_name}: data not found or corrupted under data root {root} (expected {expected}): "
                    f"archive with the wrong checksum: {'; '.join(bad)}; delete it and download again"
                ) from err
            raise DataError(
                f"{cls_name}: data not found or corrupted under data root {root} (expected {expected}); "
                f"set data.download: true to fetch it, or point data.root at a copy ({err})"
            ) from err
        out = []
        for split in (train, test):
            x = np.asarray(split.data)
            x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)  # MNIST N,H,W; CIFAR N,H,W,C
            out += [np.ascontiguousarray(x, dtype=np.uint8), np.asarray(split.targets, dtype=np.int64)]
        if image_size and image_size != out[0].shape[-1]:
            raise DataError(
                f"{cls_name} images are {out[0].shape[-1]}px; image_size {image_size} is not supported"
            )
        return tuple(out)

    return load


_LOADERS = {
    "digits": (_digits, "scikit-learn UCI digits, resized (offline smoke data)"),
    "mnist": (_torchvision("MNIST", "<root>/MNIST/raw/*-ubyte[.gz]"), "MNIST 28x28"),
    "cifar10": (_torchvision("CIFAR10", "<root>/cifar-10-batches-py/"), "CIFAR-10 32x32"),
    "cifar100": (_torchvision("CIFAR100", "<root>/cifar-100-python/"), "CIFAR-100 32x32"),
    "imagenet": (None, "ImageNet (ILSVRC-2012) image folders, streamed"),
}
DATASETS: dict[str, DatasetSpec] = {
    name: DatasetSpec(name, *DATASET_SHAPES[name], *_LOADERS[name]) for name in DATASET_SHAPES
}


def get_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; valid data sets are: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def _image_folder(path: Path, name: str, root: Path):
    from torchvision.datasets import ImageFolder

    layout = f"expected {path}/<class>/<image> (e.g. {path}/n01440764/*.JPEG)"
    if not path.is_dir():
        raise DataError(f"{name}: no folder {path} under data root {root}; {layout}")
    try:
        return ImageFolder(str(path))
    except (FileNotFoundError, RuntimeError) as err:  # no class folders, or no images in them
        raise DataError(f"{name}: cannot read {path} ({err}); {layout}") from err


def load_folder(name: str, root: str | Path, image_size: int | None = None) -> FolderData:
    """Check and count an image-folder data set (ImageNet) under ``root``; nothing is read into memory."""
    root = Path(root)
    train = _image_folder(root / name / "train", name, root)
    test = _image_folder(root / name / "val", name, root)
    if train.classes != test.classes:
        missing = sorted(set(train.classes) ^ set(test.classes))
        raise DataError(
            f"{name}: {root / name}/train and val have different class folders ({len(train.classes)} vs "
            f"{len(test.classes)}; differing: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''})"
        )
    return FolderData(
        name=name,
        train_dir=str(root / name / "train"),
        test_dir=str(root / name / "val"),
        classes=list(train.classes),
        num_train=len(train),
        num_test=len(test),
        image_size=image_size or 224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    )


def load_dataset(
    name: str, root: str | Path = "data", download: bool = False, image_size: int | None = None
) -> ImageData | FolderData:
    """Load data set ``name`` from ``root`` as uint8 tensors with training-set channel statistics.

    Streamed data sets (ImageNet) return their :class:`FolderData` manifest instead.
    """
    spec = get_spec(name)
    if spec.streamed:
        if download:
            raise DataError(f"{name} cannot be downloaded (it needs a licence); put it under {root}/{name}")
        return load_folder(name, root, image_size)
    xtr, ytr, xte, yte = spec.loader(Path(root), download, image_size)
    train_x = torch.from_numpy(np.ascontiguousarray(xtr))
    pix = train_x.float().div_(255.0)
    mean = tuple(pix.mean(dim=(0, 2, 3)).tolist())
    std = tuple(pix.std(dim=(0, 2, 3)).tolist())
    return ImageData(
        name=name,
        train_x=train_x,
        train_y=torch.as_tensor(ytr, dtype=torch.int64),
        test_x=torch.from_numpy(np.ascontiguousarray(xte)),
        test_y=torch.as_tensor(yte, dtype=torch.int64),
        num_classes=spec.num_classes,
        mean=mean,
        std=std,
    )


def save_prepared(data: ImageData | FolderData, path: str | Path) -> None:
    """Write a prepared data set atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(data.to_dict(), tmp)
    tmp.replace(path)


def load_prepared(path: str | Path) -> ImageData | FolderData:
    try:
        fields = torch.load(path, weights_only=True)
        return FolderData(**fields) if fields.pop("kind", None) == "folder" else ImageData(**fields)
    except Exception as err:  # missing, truncated, unpickling error, wrong content
        raise DataError(
            f"prepared data file {path} cannot be read ({err}); delete it and rerun the data step"
        ) from err


def augment(x: torch.Tensor, pad: int, flip: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """Batched augmentation with an independent draw per sample, on the tensor's own device.

    Random translation by up to ``pad`` pixels (zero-pad by ``pad`` then crop back at a uniform offset in
    [0, 2*pad] per axis, as in "4-px pad and crop") and horizontal flip with probability 1/2.
    """
    n, _, h, w = x.shape
    if pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad))
        dev = x.device
        oy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device="cpu").to(dev)
        ox = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device="cpu").to(dev)
        rows = oy[:, None] + torch.arange(h, device=dev)[None, :]  # n,h
        cols = ox[:, None] + torch.arange(w, device=dev)[None, :]  # n,w
        idx_n = torch.arange(n, device=dev)[:, None, None]
        x = padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if flip:
        mask = torch.rand(n, generator=generator, device="cpu").to(x.device) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(-1), x)
    return x.contiguous()


def normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 (N,C,H,W) -> float32 with per-channel (x/255 - mean) / std."""
    m = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    return (x.float().div_(255.0) - m) / s


PREPROCESS = ("none", "per_channel", "per_pixel", "mean_rgb_scaled")
MEAN_RGB_SCALE = 0.017
"""Xie et al. Sec. 5.4 (ImageNet): "Mean of RGB is subtracted then scaling with a factor 0.017" (pixel units 0..255)."""


def pixel_stats(train_x: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of every pixel position over the training images ``train_x`` (uint8
    N,C,H,W), in [0, 1] units: two float32 tensors of the image's shape (C, H, W), computed in float64 in two
    passes over chunks of ``chunk`` images. The std is the sample std (N - 1, as the per-channel statistics);
    a pixel that is constant over the training set (std 0, e.g. the empty border of the digits) gets std 1,
    so it is mapped to 0 instead of dividing by zero."""
    n = train_x.shape[0]
    if n < 2:
        raise DataError(f"per-pixel statistics need at least 2 training images, got {n}")
    total = torch.zeros(train_x.shape[1:], dtype=torch.float64)
    for i in range(0, n, chunk):
        total += train_x[i : i + chunk].double().sum(0)
    mean = total.div_(255.0 * n)
    sq = torch.zeros_like(mean)
    for i in range(0, n, chunk):
        sq += (train_x[i : i + chunk].double().div_(255.0) - mean).pow_(2).sum(0)
    std = sq.div_(n - 1).sqrt_()
    std = torch.where(std > 0, std, torch.ones_like(std))
    return mean.float(), std.float()


class Preprocessor:
    """The recipe's input preprocessing (``preprocess``) of uint8 (N,C,H,W) images, as float32 on their device.

    - ``none``: ``x / 255`` (raw pixels scaled to [0, 1], nothing subtracted; Jia et al. Sec. 6.1, 6.3).
    - ``per_channel``: :func:`normalize` with the training set's channel mean and std (the default).
    - ``per_pixel``: ``(x / 255 - mean) / std`` with the (C, H, W) statistics of :func:`pixel_stats` (Xie et
      al. Sec. 5.1: "the per-pixel mean subtracted and standard deviation divided"). Needs the training images
      in memory (an :class:`ImageData`); a :class:`FolderData` (ImageNet) has only channel statistics.
    - ``mean_rgb_scaled``: ``(x - 255 mean_c) * 0.017`` on pixels in 0..255 units, ``mean_c`` the training set's
      mean RGB (Xie et al. Sec. 5.4, ImageNet: "Mean of RGB is subtracted then scaling with a factor 0.017").
      No division by a std: 0.017 (about 1/58.8) is the paper's single scale for all three channels.

    Input may be uint8 or float in 0..255 units (the PCA lighting of the ImageNet pipeline gives float).
    """

    def __init__(self, data: ImageData | FolderData, preprocess: str, device: torch.device | str = "cpu"):
        if preprocess not in PREPROCESS:
            raise ValueError(f"preprocess must be one of {', '.join(PREPROCESS)}, got {preprocess!r}")
        self.data, self.preprocess = data, preprocess
        self.mean = self.std = None
        if preprocess == "per_pixel":
            if not isinstance(data, ImageData):
                raise ValueError(
                    f"{data.name}: preprocess per_pixel needs the training images in memory; use per_channel"
                )
            mean, std = pixel_stats(data.train_x)
            self.mean, self.std = mean[None].to(device), std[None].to(device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.preprocess == "per_channel":
            return normalize(x, self.data.mean, self.data.std)
        if self.preprocess == "none":
            return x.float().div_(255.0)
        if self.preprocess == "mean_rgb_scaled":
            m = torch.tensor(self.data.mean, device=x.device, dtype=torch.float32).view(1, -1, 1, 1)
            return (x.float() - 255.0 * m) * MEAN_RGB_SCALE
        return (x.float().div_(255.0) - self.mean) / self.std
