"""The base of every classification data module: splitting, caching, loaders and batched augmentation.

Batches are ``(images, targets)`` with uint8 images of shape ``(B, 3, H, W)``; the model converts them to
float and normalises them, so that a checkpoint carries its own preprocessing. Prediction batches pair each
image with its file path instead of a label.
"""

from functools import partial
from pathlib import Path
from typing import Literal

import lightning as L
import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt
from torch.utils.data import DataLoader, Dataset

from vlc.data.augment import augment
from vlc.data.bad_images import BadImages, Policy
from vlc.data.datasets import FileImages, TensorImages
from vlc.data.folder import folder_dataset
from vlc.data.image_cache import load_readable
from vlc.data.image_io import MAX_PIXELS, ImageReader
from vlc.data.loading import agreed, batch_generator, make_loader
from vlc.errors import UserError

Samples = tuple[list[Path] | torch.Tensor, torch.Tensor]
"""Labelled samples: file paths or a ``(N, 3, H, W)`` uint8 tensor, and a ``(N,)`` tensor of labels."""


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


class ClassificationDataModule(L.LightningDataModule):
    """Shared machinery; subclasses say where labelled samples come from (``labelled``) and the class names.

    Args:
        batch_size: images per batch.
        num_workers: DataLoader worker processes (0 decodes in the training process; on a 2-core CPU with
            ``cache: true`` that is fastest).
        val_fraction: share of each class held out for validation (seeded, stratified).
        augment: training augmentation preset: ``none``, ``flip`` or ``crop_flip`` (reflect-pad by 1/8 of the
            side, random crop, horizontal flip).
        image_size: resize every image to ``image_size x image_size`` when loading (``null`` keeps the size).
        cache: decode all images once into one uint8 tensor in memory, so that later epochs decode nothing
            (when it fits in half the available memory; otherwise the files are decoded every epoch).
        seed: seed of the train/validation split.
        predict_dir: folder of images for ``vlc predict`` (searched recursively).
        bad_images: what a run does with images it cannot read: ``stop`` names them all and stops, ``skip``
            leaves them out with a warning (see ``vlc.data.bad_images``).
        max_bad_fraction: with ``bad_images: skip``, the largest share of unreadable images a run accepts.
        max_image_pixels: images with more pixels than this are not read (a guard against decompression bombs).
    """

    def __init__(
        self,
        batch_size: PositiveInt = 128,
        num_workers: NonNegativeInt = 0,
        val_fraction: float = 0.1,
        augment: Literal["none", "flip", "crop_flip"] = "crop_flip",
        image_size: PositiveInt | None = None,
        cache: bool = True,
        seed: int = 0,
        predict_dir: str | None = None,
        bad_images: Policy = "stop",
        max_bad_fraction: float = 0.01,
        max_image_pixels: PositiveInt = MAX_PIXELS,
    ) -> None:
        super().__init__()
        if not 0.0 < val_fraction < 1.0:
            raise UserError(f"data.val_fraction must be between 0 and 1, got {val_fraction}")
        self.batch_size, self.num_workers, self.val_fraction = batch_size, num_workers, val_fraction
        self.augment, self.image_size, self.cache, self.seed = augment, image_size, cache, seed
        self.predict_dir = predict_dir
        self.reader = ImageReader(image_size, max_image_pixels)
        self.bad_images = BadImages(bad_images, max_bad_fraction)
        self.datasets: dict[str, Dataset] = {}

    # -- what subclasses provide ---------------------------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        """Class names in label order (available without ``setup()``, for linking into the model)."""
        raise NotImplementedError

    def labelled(self, split: Literal["train", "test"]) -> Samples | None:
        """The labelled samples of ``train`` (split further into train/val) or ``test`` (None when absent)."""
        raise NotImplementedError

    def predict_folder(self) -> str | Path | None:
        """The folder ``vlc predict`` reads (every image under it): ``predict_dir``."""
        return self.predict_dir

    # -- shared machinery ----------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """Number of classes (linked into the model's ``num_classes``)."""
        return len(self.class_names)

    def setup(self, stage: str) -> None:
        if stage in ("fit", "validate") and "val" not in self.datasets:
            samples, labels = self.labelled("train")
            train_idx, val_idx = stratified_split(labels, self.val_fraction, self.seed)  # of every file, bad or not
            images, rows = self._readable(samples, "training and validation images")
            self.datasets["train"] = self._dataset(images, rows, labels, train_idx)
            self.datasets["val"] = self._dataset(images, rows, labels, val_idx)
        if stage == "test" and "test" not in self.datasets:
            samples = self.labelled("test")
            if samples is None:
                raise UserError(f"{type(self).__name__} has no labelled test set; see its data.* options")
            images, rows = self._readable(samples[0], "test images")
            self.datasets["test"] = self._dataset(images, rows, samples[1], torch.arange(len(samples[1])))
        if stage == "predict":
            self.datasets["predict"], self.bad_images = folder_dataset(self.predict_folder(), self.reader)

    def _readable(self, samples: list[Path] | torch.Tensor, what: str) -> tuple[list[Path] | torch.Tensor, dict]:
        """The readable samples (the files, or the cache) and ``{position in samples: row in them}``.

        Files get a header check, then, with ``cache``, are decoded into the cache; every failure goes to
        ``bad_images``, whose policy stops the run or leaves them out.
        """
        if isinstance(samples, torch.Tensor):
            return samples, {i: i for i in range(len(samples))}
        agree = partial(agreed, self.trainer)
        images, kept = load_readable(samples, self.reader, self.bad_images, self.cache, what, agree)
        self.bad_images.settle(what, len(samples))
        return images, {position: row for row, position in enumerate(kept)}

    def _dataset(self, images: list[Path] | torch.Tensor, rows: dict, labels: torch.Tensor, idx: torch.Tensor):
        """The samples at positions ``idx`` that could be read: rows of the cache (shared, not copied) or files."""
        keep = [i for i in idx.tolist() if i in rows]
        if isinstance(images, torch.Tensor):
            return TensorImages(images, labels[keep], [rows[i] for i in keep])
        return FileImages([images[rows[i]] for i in keep], labels[keep], self.reader)

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        dataset = self.datasets[split]
        drop_last = shuffle and len(dataset) > self.batch_size
        return make_loader(dataset, self.batch_size, self.num_workers, shuffle, self.trainer, drop_last=drop_last)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict")

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        batch = self.bad_images.take(batch, self.trainer)
        if batch is not None and self.trainer is not None and self.trainer.training:
            images, labels = batch
            return augment(images, self.augment, batch_generator(self.trainer, images.device)), labels
        return batch
