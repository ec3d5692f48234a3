"""Mini-batches for the trainer: one interface over in-memory tensors and streamed image folders.

Both sources yield ``(x, y)`` on the training device, ``x`` float32 preprocessed as the recipe's ``preprocess``
says (:class:`normbench.training.data.Preprocessor`: per channel by default, per pixel, or raw pixels / 255) and ``y`` int64,
and draw every random number of an epoch from the run's own ``torch.Generator``, so a resumed run continues
the same sequence and two runs of one seed see the same batches.

- :class:`TensorBatches` (digits, MNIST, CIFAR): the whole data set as uint8 tensors on the device. An epoch
  is a permutation of the training set cut into batches; each batch is augmented on the device with a
  per-sample draw (:func:`normbench.training.data.augment`: translation by up to ``pad`` px, flip with p = 1/2).
- :class:`FolderBatches` (ImageNet): a ``DataLoader`` over the image folders. An epoch draws the same
  permutation plus one 63-bit seed per sample; a worker decodes the image and applies the recipe's
  augmentation under that seed. The result does not depend on the number of workers. Evaluation resizes
  the shorter side to ``image_size * 256/224`` and takes the centre crop (the single-crop protocol).
  Training crops (``augment.crop``):

  - ``random_resized`` (default): random-resized crop to ``image_size`` with scale [0.08, 1] and aspect ratio
    [3/4, 4/3] (the scale augmentation of Szegedy et al. that ResNet/ResNeXt and Inception-ResNet training use);
  - ``resize_random``: Xie et al. Sec. 5.4, "224x224 crops are randomly sampled on 256x256 images plus horizontal
    flip and color augmentation [17]": the 256x256 image as [17] (AlexNet) makes it ("rescaled the image such
    that the shorter side was of length 256, and then cropped out the central 256x256 patch"; for another
    ``image_size``, 256/224 of it), then a uniformly random ``image_size`` crop. (Caffe's ImageNet tools warp
    to 256x256 instead; [17]'s text is followed.)

  then a flip with p = 1/2 (``augment.flip``), then, with ``augment.lighting`` > 0, [17]'s colour augmentation
  (:class:`PCALighting`): an RGB offset along the principal components of ImageNet's pixel colours, with
  Gaussian weights of std ``lighting`` (0.1 in [17]). With lighting the batches are float32 in 0..255 units,
  else uint8; :class:`normbench.training.data.Preprocessor` takes either.

The last batch of an epoch is kept even when smaller than ``batch_size`` unless ``drop_last`` (the run's
``engine.drop_last``) asks to drop it; dropping draws nothing for it (the generator advances less).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import torch

from normbench.training.data import FolderData, ImageData, Preprocessor, augment

Batch = tuple[torch.Tensor, torch.Tensor]


def probe_indices(n: int, size: int) -> torch.Tensor:
    """The fixed probe images: the first ``size`` of a permutation seeded with 0 (same for every run)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(0))[:size]


class TensorBatches:
    """An in-memory uint8 data set on ``device``, augmented there batch by batch."""

    def __init__(
        self,
        data: ImageData,
        device: torch.device,
        batch_size: int,
        augment: dict[str, Any],
        preprocess: str = "per_channel",
    ):
        self.data, self.device, self.batch_size = data, device, batch_size
        self._norm = Preprocessor(data, preprocess, device)
        self.pad, self.flip = augment["pad"], augment["flip"]
        if augment.get("crop", "random_resized") != "random_resized" or augment.get("lighting", 0):
            raise ValueError(
                f"{data.name}: augment.crop and augment.lighting are for image folders (ImageNet); "
                "tensor data sets use pad and flip"
            )
        self.train_x, self.train_y = data.train_x.to(device), data.train_y.to(device)
        self.test_x, self.test_y = data.test_x.to(device), data.test_y.to(device)
        self.num_train, self.num_test = len(self.train_y), len(self.test_y)

    def train_epoch(self, gen: torch.Generator, drop_last: bool = False) -> Iterator[Batch]:
        perm = torch.randperm(self.num_train, generator=gen).to(self.device)
        end = self.num_train - self.num_train % self.batch_size if drop_last else self.num_train
        for i in range(0, end, self.batch_size):
            idx = perm[i : i + self.batch_size]
            yield self._norm(augment(self.train_x[idx], self.pad, self.flip, gen)), self.train_y[idx]

    def test_batches(self, batch: int = 1000) -> Iterator[Batch]:
        for i in range(0, self.num_test, batch):
            yield self._norm(self.test_x[i : i + batch]), self.test_y[i : i + batch]

    def probe_batch(self, size: int) -> Batch:
        idx = probe_indices(self.num_train, size)
        return self._norm(self.data.train_x[idx].to(self.device)), self.data.train_y[idx].to(self.device)


class SeededFolder(torch.utils.data.Dataset):
    """An ``ImageFolder`` indexed by ``(index, seed)``: the transform's random draws come from ``seed``."""

    def __init__(self, root: str, transform, classes: list[str]):
        from torchvision.datasets import ImageFolder

        self.folder = ImageFolder(root)
        if self.folder.classes != classes:
            raise RuntimeError(f"{root}: class folders changed since the data step; rerun it")
        self.transform = transform

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, seed = key
        path, label = self.folder.samples[index]
        image = self.folder.loader(path)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.transform(image), label


CROPS = ("random_resized", "resize_random")

# Principal components of ImageNet's RGB pixel values (pixels in [0, 1]): eigenvalues and eigenvectors (columns)
# of their 3x3 covariance. [17] computes them "on the set of RGB pixel values throughout the ImageNet training
# set" but prints no values; these are the published ones of fb.resnet.torch (datasets/imagenet.lua, `pca`),
# the Torch ResNet code, used by most PyTorch ImageNet pipelines since.
IMAGENET_PCA_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_PCA_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)


class PCALighting:
    """[17]'s colour augmentation (Krizhevsky et al. 2012, Sec. 4.1, "PCA lighting") of one (3, H, W) image.

    To every pixel ``[R, G, B]`` (0..255 units) it adds ``255 [p1, p2, p3] [a1 l1, a2 l2, a3 l3]^T``, ``p_i``
    and ``l_i`` the eigenvectors and eigenvalues of the RGB covariance (:data:`IMAGENET_PCA_EIGVAL`, for pixels
    in [0, 1], hence the 255), ``a_i ~ N(0, std)`` drawn once per image from torch's global generator (the
    loader seeds it per sample). Returns float32 (no rounding or clipping, as fb.resnet.torch); ``std = 0``
    adds nothing.
    """

    def __init__(self, std: float = 0.1, eigval=IMAGENET_PCA_EIGVAL, eigvec=IMAGENET_PCA_EIGVEC):
        if std < 0:
            raise ValueError(f"lighting std must be >= 0, got {std}")
        self.std = float(std)
        self.eigval = torch.tensor(eigval, dtype=torch.float32)
        self.eigvec = torch.tensor(eigvec, dtype=torch.float32)

    def offset(self, alpha: torch.Tensor) -> torch.Tensor:
        """The RGB offset (0..255 units) for component weights ``alpha`` (3,)."""
        return 255.0 * self.eigvec @ (alpha * self.eigval)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        x = image.float()
        if self.std == 0:
            return x
        alpha = torch.randn(3) * self.std
        return x + self.offset(alpha).view(3, 1, 1)


def folder_transforms(size: int, flip: bool, crop: str = "random_resized", lighting: float = 0.0):
    """(train, test) torchvision transforms producing (3, size, size) tensors: uint8, or float32 in 0..255
    units for training with ``lighting`` > 0 (see the module docstring)."""
    from torchvision.transforms import v2

    if crop not in CROPS:
        raise ValueError(f"augment.crop must be one of {', '.join(CROPS)}, got {crop!r}")
    side = round(size * 256 / 224)
    if crop == "random_resized":
        train = [v2.RandomResizedCrop(size, antialias=True)]
    else:
        train = [v2.Resize(side, antialias=True), v2.CenterCrop(side), v2.RandomCrop(size)]
    if flip:
        train.append(v2.RandomHorizontalFlip())
    train.append(v2.PILToTensor())
    if lighting > 0:
        train.append(PCALighting(lighting))
    test = [v2.Resize(side, antialias=True), v2.CenterCrop(size)]
    return v2.Compose(train), v2.Compose([*test, v2.PILToTensor()])


class FolderBatches:
    """An image-folder data set streamed through ``DataLoader`` workers (see the module docstring)."""

    def __init__(
        self,
        data: FolderData,
        device: torch.device,
        batch_size: int,
        augment: dict[str, Any],
        workers: int = 8,
        preprocess: str = "per_channel",
    ):
        if augment["pad"]:
            raise ValueError(
                f"{data.name}: augment.pad is for tensor data sets; image folders use random-resized crops "
                "(set augment.pad: 0)"
            )
        self.data, self.device, self.batch_size, self.workers = data, device, batch_size, workers
        self._norm = Preprocessor(data, preprocess, device)  # per_pixel: ValueError (no pixel statistics)
        train_tf, test_tf = folder_transforms(
            data.image_size,
            augment["flip"],
            augment.get("crop", "random_resized"),
            float(augment.get("lighting", 0.0)),
        )
        self.train_set = SeededFolder(data.train_dir, train_tf, data.classes)
        self.test_set = SeededFolder(data.test_dir, test_tf, data.classes)
        self.num_train, self.num_test = len(self.train_set), len(self.test_set)

    def _load(self, dataset: SeededFolder, keys: list[list[tuple[int, int]]]) -> Iterator[Batch]:
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_sampler=keys,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
        )
        for x, y in loader:
            x = x.to(self.device, non_blocking=True)
            yield self._norm(x), y.to(self.device, non_blocking=True)

    def train_epoch(self, gen: torch.Generator, drop_last: bool = False) -> Iterator[Batch]:
        perm = torch.randperm(self.num_train, generator=gen).tolist()
        seeds = torch.randint(0, 2**63 - 1, (self.num_train,), generator=gen).tolist()
        keys = list(zip(perm, seeds, strict=True))
        bs = self.batch_size
        end = len(keys) - len(keys) % bs if drop_last else len(keys)
        yield from self._load(self.train_set, [keys[i : i + bs] for i in range(0, end, bs)])

    def test_batches(self, batch: int | None = None) -> Iterator[Batch]:
        bs = batch or 2 * self.batch_size
        keys = [(i, 0) for i in range(self.num_test)]
        yield from self._load(self.test_set, [keys[i : i + bs] for i in range(0, len(keys), bs)])

    def probe_batch(self, size: int) -> Batch:
        """The fixed probe images, with the evaluation transform (no augmentation)."""
        idx = probe_indices(self.num_train, size).tolist()
        probe = copy.copy(self.train_set)  # the same scanned folder, with the evaluation transform
        probe.transform = self.test_set.transform
        return next(self._load(probe, [[(i, 0) for i in idx]]))


def make_batches(
    data: ImageData | FolderData,
    device: torch.device,
    batch_size: int,
    augment: dict[str, Any],
    workers: int,
    preprocess: str = "per_channel",
) -> TensorBatches | FolderBatches:
    """The batch source for a prepared data set, its images preprocessed as ``preprocess`` says."""
    if isinstance(data, FolderData):
        return FolderBatches(data, device, batch_size, augment, workers, preprocess)
    return TensorBatches(data, device, batch_size, augment, preprocess)
