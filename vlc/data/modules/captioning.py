"""The base of every captioning data module: split by image, vocabulary, caption encoding, loaders.

Batches are dicts::

    {"images": (B, 3, H, W) uint8, "captions": (B, T) long, "references": list of B lists of str,
     "keys": (B,) long}

``captions`` holds ``<start> words <end> <pad>...`` ids: for training either every (image, caption) pair once per
epoch (``every_caption: true``; an epoch is then one pass over the captions, about five per image on COCO and
Flickr), or one reference per image, drawn at random for every batch (an epoch is one pass over the images; every
epoch sees other phrasings; the draw happens after the batch reaches the device, from a generator seeded by the
batch's position, see ``vlc.data.loading``); for validation and test always the first reference (for a
reproducible teacher-forced loss). Training batches also carry every reference's ids as
``options`` ``(B, R, T)`` with their count per image ``num_options`` until the draw replaces them.
``references`` holds every reference caption of each image for the free-running caption metrics. ``keys``
identify images across epochs (COCO image ids, generator indices); the captioner's feature cache is keyed by them.
Prediction batches are ``{"images", "files"}`` as for every task (``vlc.data.modules.base``).
"""

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from jsonargparse.typing import PositiveInt
from torch.utils.data import Dataset

from vlc.data.datasets.captions import CaptionDataset, collate_captions
from vlc.data.modules.base import ImageDataModule
from vlc.errors import UserError
from vlc.vocabulary import Vocabulary

SPLITS = ("train", "val", "test")
SPLIT_NAMES = {"train": "training", "val": "validation", "test": "test"}


def split_by_image(n: int, fractions: Sequence[float], seed: int) -> dict[str, list[int]]:
    """Seeded train/val/test split of ``n`` images (positions), so that no image is in two parts.

    Args:
        n: number of images.
        fractions: shares of train, validation and test; they must add up to 1.
        seed: seed of the permutation.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``, each sorted.
    """
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_val, n_test = round(n * fractions[1]), round(n * fractions[2])
    n_train = n - n_val - n_test
    parts = order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]
    return {name: sorted(part) for name, part in zip(SPLITS, parts)}


def draw_captions(batch: dict, generator: torch.Generator | None) -> dict:
    """Replace ``captions`` by one reference per image drawn from ``options`` (training batches)."""
    options, counts = batch.pop("options", None), batch.pop("num_options", None)
    if options is None:
        return batch
    pick = (torch.rand(len(counts), device=options.device, generator=generator) * counts).long()  # (B,)
    captions = options[torch.arange(len(counts), device=options.device), pick]  # (B, T)
    batch["captions"] = captions[:, : int((captions != Vocabulary.PAD).sum(1).max())]
    return batch


class CaptionDataModule(ImageDataModule):
    """Images with reference captions; subclasses list the usable images with their references and load their pixels.

    With ``shards`` the images, keys and references are those of the shard folder instead, split in the same way.

    The vocabulary is built from the training split's references only (or read from ``vocab_file``), and is
    available right after construction, without ``setup()``: the CLI links it into the model, whose checkpoints
    store it.

    Args:
        split: shares of the images for train, validation and test (seeded by ``seed``, by image, adding up to 1).
        min_word_count: words seen fewer times in the training references become ``<unk>``.
        max_caption_length: longest caption in words; longer training captions are cut.
        vocab_file: a vocabulary JSON (the ``vocab.json`` that training writes beside its checkpoints) to use
            instead of building one: evaluate or fine-tune a checkpoint on other data with its own vocabulary.
        every_caption: train on every (image, caption) pair each epoch (as the reference implementations do; cheap
            with the captioner's feature cache), instead of one caption per image drawn at random.
        **kwargs: the options every data module shares (``vlc.data.modules.base.ImageDataModule``: batch size, workers,
            image size, cache, seed, predict folder, bad images).
    """

    def __init__(
        self,
        split: tuple[float, float, float] = (0.8, 0.1, 0.1),
        min_word_count: PositiveInt = 1,
        max_caption_length: PositiveInt = 20,
        vocab_file: str | None = None,
        every_caption: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if len(split) != 3 or min(split) < 0 or split[0] <= 0 or abs(sum(split) - 1) > 1e-6:
            raise UserError(f"data.split must be three shares (train, val, test) that add up to 1, got {list(split)}")
        if min_word_count < 1 or max_caption_length < 1:
            raise UserError("data.min_word_count and data.max_caption_length must be at least 1")
        self.split, self.min_word_count = tuple(split), min_word_count
        self.max_caption_length, self.vocab_file, self.every_caption = max_caption_length, vocab_file, every_caption
        self._index: tuple[list[int], list[list[str]]] | None = None
        self._splits: dict[str, list[int]] | None = None
        self._vocab: Vocabulary | None = None

    # -- what subclasses provide ---------------------------------------------------------------------------
    def list_images(self) -> tuple[list[int], list[list[str]]]:
        """Keys and reference captions of every usable image (each with at least one non-empty caption)."""
        raise NotImplementedError

    def load_images(self, positions: list[int]) -> torch.Tensor | list[Path]:
        """The pixels of the images at ``positions`` of :meth:`list_images`: a uint8 tensor or file paths."""
        raise NotImplementedError

    # -- index, split and vocabulary (no pixels) -----------------------------------------------------------
    @property
    def index(self) -> tuple[list[int], list[list[str]]]:
        """``(keys, references)`` of all usable images, listed once."""
        if self._index is None:
            if self.shards is None:
                self._index = self.list_images()
            else:
                images = self.shard_index("captioning").splits["images"]
                self._index = images["keys"], images["references"]
            if not self._index[0]:
                raise UserError(f"{type(self).__name__}: no usable image with a caption")
        return self._index

    @property
    def splits(self) -> dict[str, list[int]]:
        """Positions (into :attr:`index`) of the train, val and test images."""
        if self._splits is None:
            self._splits = split_by_image(len(self.index[0]), self.split, self.seed)
            if not self._splits["train"]:
                raise UserError(f"data.split {list(self.split)} leaves no training image of {len(self.index[0])}")
        return self._splits

    @property
    def vocabulary(self) -> Vocabulary:
        """The vocabulary: read from ``vocab_file``, or built from the training references."""
        if self._vocab is None:
            if self.vocab_file is not None:
                try:
                    self._vocab = Vocabulary.load(self.vocab_file)
                except (OSError, ValueError) as err:
                    raise UserError(f"data.vocab_file: {err}") from None
            else:
                references = self.index[1]
                train = (ref for i in self.splits["train"] for ref in references[i])
                self._vocab = Vocabulary.build(train, min_count=self.min_word_count)
        return self._vocab

    @property
    def vocab(self) -> dict:
        """The vocabulary as a JSON-able dict (linked into the model's ``vocab`` and stored in checkpoints)."""
        return self.vocabulary.to_dict()

    # -- datasets, batches and caption draws -------------------------------------------------------------------
    def setup_splits(self, stage: str) -> None:
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}.get(stage, ())
        # a validation share of 0 when fitting: training without validation
        wanted = [s for s in wanted if s not in self.datasets and (s != "val" or stage != "fit" or self.splits[s])]
        files = 0
        for split in wanted:
            self.datasets[split], n = self._dataset(split)
            files += n
        if files:  # every bad file of the stage's splits is named before the run stops
            self.bad_images.settle(" and ".join(f"{SPLIT_NAMES[s]}" for s in wanted) + " images", files)

    def _dataset(self, split: str) -> tuple[CaptionDataset, int]:
        """The split's dataset without the images that cannot be read, and how many files were checked."""
        positions = self.splits[split]
        if not positions:
            raise UserError(f"data.split {list(self.split)} leaves no {split} image of {len(self.index[0])}")
        if self.shards is None:
            images = self.load_images(positions)
        else:
            images = self.shard_index("captioning").images("images", positions)
        files = 0
        if not isinstance(images, torch.Tensor):  # files: a header check, then the cache build finds the bad ones
            files = len(images)
            images, kept = self.readable(images, f"{SPLIT_NAMES[split]} images")
            positions = [positions[i] for i in kept]
        keys, references = self.index
        refs = [references[i] for i in positions]
        max_len = self.max_caption_length + 2  # <start> and <end>
        encoded = [[self.vocabulary.encode(ref, max_len) for ref in image_refs] for image_refs in refs]
        train = split == "train"
        dataset = CaptionDataset(
            images, [keys[i] for i in positions], refs, encoded, train, self.reader, train and self.every_caption
        )
        return dataset, files

    def collate(self, dataset: Dataset) -> Callable | None:
        return collate_captions if isinstance(dataset, CaptionDataset) else None

    def train_batch(self, batch: dict, generator: torch.Generator) -> dict:
        return draw_captions(batch, generator)
