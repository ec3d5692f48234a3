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
  augmentation under that seed (random-resized crop to ``image_size`` with scale [0.08, 1] and aspect ratio
  [3/4, 4/3], then a flip with p = 1/2: the scale augmentation of Szegedy et al. that ResNet/ResNeXt and
  Inception-ResNet training use). The result does not depend on the number of workers. Evaluation resizes
  the shorter side to ``image_size * 256/224`` and takes the centre crop (the single-crop protocol).

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


def folder_transforms(size: int, flip: bool):
    """(train, test) torchvision transforms producing uint8 (3, size, size) tensors."""
    from torchvision.transforms import v2

    train = [v2.RandomResizedCrop(size, antialias=True)]
    if flip:
        train.append(v2.RandomHorizontalFlip())
    test = [v2.Resize(round(size * 256 / 224), antialias=True), v2.CenterCrop(size)]
    return v2.Compose([*train, v2.PILToTensor()]), v2.Compose([*test, v2.PILToTensor()])


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
        train_tf, test_tf = folder_transforms(data.image_size, augment["flip"])
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
