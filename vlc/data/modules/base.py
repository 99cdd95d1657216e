"""The one base of every data module: the shared options, readable images, loaders, bad images and predict folders.

Every batch is a dict with named fields: ``images`` ``(B, 3, H, W)`` uint8 always, then ``labels`` ``(B,)``
(classification), ``files`` (prediction: each image's path) or ``captions``/``references``/``keys`` (captioning, see
``vlc.data.modules.captioning``). The model resizes and normalises the images itself, so a checkpoint carries its own
preprocessing.
"""

from collections.abc import Callable
from functools import partial
from pathlib import Path

import lightning as L
import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt
from torch.utils.data import DataLoader, Dataset

from vlc.data.bad_images import BadImages, Policy, Unreadable
from vlc.data.datasets.predict_folder import folder_dataset
from vlc.data.datasets.shards import ShardImages, ShardIndex, litdata, read_index
from vlc.data.image_cache import load_readable
from vlc.data.loading import agreed, batch_generator, make_loader
from vlc.errors import UserError, given
from vlc.images import MAX_PIXELS, ImageReader


class ImageDataModule(L.LightningDataModule):
    """What every data module shares; subclasses build ``self.datasets`` for their splits in :meth:`setup_splits`.

    Args:
        batch_size: images per batch.
        num_workers: DataLoader worker processes (0 decodes in the training process; on a 2-core CPU with
            ``cache: true`` that is fastest).
        image_size: resize every image to ``image_size x image_size`` when loading (``null`` keeps the size).
        cache: decode all images once into one uint8 tensor in memory, so that later epochs decode nothing
            (when it fits in half the available memory; otherwise the files are decoded every epoch).
        seed: seed of the split into training, validation (and test) images.
        predict_dir: what ``vlc predict`` reads: a folder of images (searched recursively) or one image file.
        bad_images: what a run does with images it cannot read: ``stop`` names them all and stops, ``skip``
            leaves them out with a warning (see ``vlc.data.bad_images``).
        max_bad_fraction: with ``bad_images: skip``, the largest share of unreadable images a run accepts.
        max_image_pixels: images with more pixels than this are not read (a guard against decompression bombs).
        shards: a folder written by ``vlc data optimize`` (``vlc.data.datasets.shards``): the splits are read
            from its chunks, image by image, instead of from the files or the cache; the items, labels, class names
            and captions are the shards' (the options that choose them, such as ``root``, are not read), the split
            and loading options this module's.
    """

    def __init__(
        self,
        batch_size: PositiveInt = 64,
        num_workers: NonNegativeInt = 0,
        image_size: PositiveInt | None = None,
        cache: bool = True,
        seed: int = 0,
        predict_dir: str | None = None,
        bad_images: Policy = "stop",
        max_bad_fraction: float = 0.01,
        max_image_pixels: PositiveInt = MAX_PIXELS,
        shards: str | None = None,
    ) -> None:
        super().__init__()
        self.batch_size, self.num_workers, self.image_size = batch_size, num_workers, image_size
        self.cache, self.seed, self.predict_dir = cache, seed, predict_dir
        self.reader = ImageReader(image_size, max_image_pixels)
        self.bad_images = BadImages(bad_images, max_bad_fraction)
        self.datasets: dict[str, Dataset] = {}
        self.shards = given(shards)
        self._shard_index: ShardIndex | None = None

    # -- what subclasses provide ---------------------------------------------------------------------------
    def setup_splits(self, stage: str) -> None:
        """Build ``self.datasets["train"|"val"|"test"]`` for ``stage`` (``fit``, ``validate``, ``test``)."""
        raise NotImplementedError

    def predict_folder(self) -> str | Path | None:
        """The folder ``vlc predict`` reads (every image under it), or one image file: ``predict_dir``."""
        return self.predict_dir

    def test_options(self) -> list[str]:
        """The options ``vlc test`` needs that this data module was not given (none: it has a labelled test set)."""
        return []

    def check_test_set(self) -> None:
        """Stop, naming the options :meth:`test_options` lists, when there is no labelled test set to score.

        Raises:
            UserError: ``vlc test`` needs options this data module was not given.
        """
        if self.shards is None and (needed := self.test_options()):  # shards hold their test set or say not
            raise UserError(f"{type(self).__name__} has no labelled test set: vlc test needs {' '.join(needed)}")

    def collate(self, dataset: Dataset) -> Callable | None:
        """How the items of ``dataset`` become a batch (None: torch's default, which keeps dicts)."""
        return None

    def train_batch(self, batch: dict, generator: torch.Generator) -> dict:
        """A training batch on its device, before the step: augmentation, caption draws (none by default)."""
        return batch

    # -- shared machinery ----------------------------------------------------------------------------------
    def shard_index(self, task: str) -> ShardIndex:
        """The index of ``data.shards``, read once, checked to hold ``task`` (``classification``, ``captioning``)."""
        if self._shard_index is None:
            litdata()  # installed, or one line before anything starts
            self._shard_index = read_index(self.shards, task)
        return self._shard_index

    def setup(self, stage: str) -> None:
        if stage == "predict":
            self.datasets["predict"], self.bad_images = folder_dataset(self.predict_folder(), self.reader)
        else:
            self.setup_splits(stage)

    def readable(
        self, files: list[Path] | ShardImages, what: str
    ) -> tuple[list[Path] | ShardImages | torch.Tensor, list[int]]:
        """The readable ``files`` (decoded into the cache, or the files) and their positions in ``files``.

        Each file gets a header check, then, with ``cache``, is decoded; every failure goes to ``bad_images``,
        whose policy the caller applies with ``bad_images.settle`` once every file of the stage was read. Images
        of shards are not read: their header check was made when they were written, and they are never cached.
        """
        if isinstance(files, ShardImages):  # checked when written: nothing read, no cache
            kept = files.checked(self.bad_images)
            return files.subset(kept), kept
        agree = partial(agreed, self.trainer)
        return load_readable(files, self.reader, self.bad_images, self.cache, what, agree)

    def sample_images(self, n: int) -> torch.Tensor:
        """Up to ``n`` training images ``(n, 3, H, W)`` uint8, evenly spaced over the training set.

        A fixed sample that covers every class even when the set is ordered by class (image folders); for layers
        computed from the data (``ImageBackbone.init_from_data``). Images that cannot be read are left out.
        """
        dataset = self.datasets["train"]
        positions = range(0, len(dataset), max(1, len(dataset) // n))[:n]
        samples = [dataset[i] for i in positions]
        # classification items are dicts, captioning items (image, options, references, key) tuples
        images = [s["images"] if isinstance(s, dict) else s[0] for s in samples if not isinstance(s, Unreadable)]
        if not images:
            raise UserError(f"none of the {len(samples)} training images sampled for the backbone could be read")
        return torch.stack(images)

    def loader(self, split: str, shuffle: bool = False) -> DataLoader:
        """The loader of a split; a training loader drops its last batch when partial (every step sees a full one)."""
        dataset = self.datasets[split]
        drop_last = shuffle and len(dataset) > self.batch_size
        collate = self.collate(dataset)
        return make_loader(dataset, self.batch_size, self.num_workers, shuffle, self.trainer, collate, drop_last)

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return self.loader("val") if "val" in self.datasets else []  # no validation images: training without

    def test_dataloader(self) -> DataLoader:
        return self.loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self.loader("predict")

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        batch = self.bad_images.take(batch, self.trainer)
        if batch is not None and self.trainer is not None and self.trainer.training:
            return self.train_batch(batch, batch_generator(self.trainer, batch["images"].device))
        return batch
