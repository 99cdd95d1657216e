"""The base of every classification data module: a stratified train/validation split and batched augmentation.

Batches are ``{"images": (B, 3, H, W) uint8, "labels": (B,)}`` (see ``vlc.data.modules.base``).
"""

from pathlib import Path
from typing import Literal

import torch
from jsonargparse.typing import PositiveInt

from vlc.data.augment import alternating_flips, augment
from vlc.data.datasets.images import FileImages, Samples, TensorImages
from vlc.data.datasets.shards import ShardImages
from vlc.data.loading import run_seed
from vlc.data.modules.base import ImageDataModule
from vlc.errors import UserError


def stratified_split(labels: torch.Tensor, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of a seeded train/validation split that keeps each class's share in both parts."""
    generator = torch.Generator().manual_seed(seed)
    train, val = [], []
    for c in labels.unique():
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=generator)]
        n_val = round(len(idx) * val_fraction)
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return torch.cat(train).sort().values, torch.cat(val).sort().values


class ClassificationDataModule(ImageDataModule):
    """Labelled images; subclasses say where they come from (``labelled``) and the class names (``source_class_names``).

    With ``shards`` the images, labels and class names are those of the shard folder instead, split in the same way.

    Args:
        val_fraction: share of each class held out for validation (seeded, stratified).
        train_fraction: share of each class's remaining images that training uses (seeded, stratified; 1: all):
            a small-data setting whose validation split is the full one's, so that runs compare.
        augment: training augmentation preset: ``none``, ``flip`` or ``crop_flip`` (reflect-pad by
            ``crop_padding``, random crop, horizontal flip).
        flip: how ``flip`` and ``crop_flip`` choose the images they mirror: ``random`` (a random half of each
            batch) or ``alternating`` (airbench's derandomised flips: each image on alternate epochs, from a seeded
            random half; ``vlc.data.augment.alternating_flips``).
        crop_padding: reflect padding of ``crop_flip``, in pixels, so that crops shift by up to that much (``null``:
            1/8 of the side, 4 px at 32 px; airbench: 2).
        **kwargs: the options every data module shares (``vlc.data.modules.base.ImageDataModule``: batch size, workers,
            image size, cache, seed, predict folder, bad images).
    """

    def __init__(
        self,
        val_fraction: float = 0.1,
        train_fraction: float = 1.0,
        augment: Literal["none", "flip", "crop_flip"] = "crop_flip",
        flip: Literal["random", "alternating"] = "random",
        crop_padding: PositiveInt | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if not 0.0 < val_fraction < 1.0:
            raise UserError(f"data.val_fraction must be between 0 and 1, got {val_fraction}")
        if not 0.0 < train_fraction <= 1.0:
            raise UserError(f"data.train_fraction must be above 0 and at most 1, got {train_fraction}")
        self.val_fraction, self.train_fraction = val_fraction, train_fraction
        self.augment, self.flip, self.crop_padding = augment, flip, crop_padding

    # -- what subclasses provide ---------------------------------------------------------------------------
    @property
    def source_class_names(self) -> list[str]:
        """The class names of the source (the files or generator) in label order."""
        raise NotImplementedError

    def labelled(self, split: Literal["train", "test"]) -> Samples | None:
        """The labelled samples of ``train`` (split further into train/val) or ``test`` (None when absent)."""
        raise NotImplementedError

    # -- splits, datasets and augmentation -----------------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        """Class names in label order: the shards' or the source's (without ``setup()``, for linking into the model)."""
        return self.shard_index("classification").class_names if self.shards else self.source_class_names

    def samples(self, split: str) -> Samples | None:
        """The labelled samples of ``split``, from the shards (``data.shards``) or the source (:meth:`labelled`)."""
        if self.shards is None:
            return self.labelled(split)
        index = self.shard_index("classification")
        if split not in index.splits:
            if split == "test":
                raise UserError(f"data.shards: {self.shards} holds no test split (its source had no labelled test set)")
            raise UserError(f"data.shards: {self.shards} holds no {split} split")
        return index.images(split), torch.tensor(index.splits[split]["labels"])

    @property
    def num_classes(self) -> int:
        """Number of classes (linked into the model's ``num_classes``)."""
        return len(self.class_names)

    def setup_splits(self, stage: str) -> None:
        if stage in ("fit", "validate") and "val" not in self.datasets:
            samples, labels = self.samples("train")
            train_idx, val_idx = stratified_split(labels, self.val_fraction, self.seed)  # of every file, bad or not
            if self.train_fraction < 1.0:
                unused = 1.0 - self.train_fraction
                train_idx = train_idx[stratified_split(labels[train_idx], unused, self.seed)[0]]
            images, rows = self._readable(samples, "training and validation images")
            self.datasets["train"] = self._dataset(images, rows, labels, train_idx)
            self.datasets["val"] = self._dataset(images, rows, labels, val_idx)
        if stage == "test" and "test" not in self.datasets:
            samples = self.samples("test")
            if samples is None:
                self.check_test_set()
                raise UserError(f"{type(self).__name__} has no labelled test set; see its data.* options")
            images, rows = self._readable(samples[0], "test images")
            self.datasets["test"] = self._dataset(images, rows, samples[1], torch.arange(len(samples[1])))

    def _readable(self, samples: list[Path] | ShardImages | torch.Tensor, what: str) -> tuple:
        """The readable samples (the files, shards or the cache) and ``{position in samples: row in them}``."""
        if isinstance(samples, torch.Tensor):
            return samples, {i: i for i in range(len(samples))}
        images, kept = self.readable(samples, what)
        self.bad_images.settle(what, len(samples))
        return images, {position: row for row, position in enumerate(kept)}

    def _dataset(self, images: list[Path] | torch.Tensor, rows: dict, labels: torch.Tensor, idx: torch.Tensor):
        """The samples at positions ``idx`` that could be read: rows of the cache (shared, not copied) or files."""
        keep = [i for i in idx.tolist() if i in rows]
        if isinstance(images, torch.Tensor):
            return TensorImages(images, labels[keep], [rows[i] for i in keep])
        if isinstance(images, ShardImages):
            return FileImages(images.subset([rows[i] for i in keep]), labels[keep], self.reader)
        return FileImages([images[rows[i]] for i in keep], labels[keep], self.reader)

    def train_batch(self, batch: dict, generator: torch.Generator) -> dict:
        flips = None
        if self.flip == "alternating":
            flips = alternating_flips(batch["index"], self.trainer.current_epoch, run_seed())
        return {**batch, "images": augment(batch["images"], self.augment, generator, self.crop_padding, flips)}
