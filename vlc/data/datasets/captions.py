"""Images with their reference captions as a ``Dataset``, and the collate function that makes its items a batch.

Items are ``(image, options, references, key)``: the ``(3, H, W)`` uint8 image, its references as token ids, its
references as strings and its key; :func:`collate_captions` makes them the batches that
``vlc.data.modules.captioning`` describes.
"""

from pathlib import Path

import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Dataset

from vlc.data.bad_images import Unreadable, read_or_unreadable
from vlc.images import ImageReader
from vlc.vocabulary import Vocabulary


class CaptionDataset(Dataset):
    """Images (one uint8 tensor, or files decoded on access) with their encoded reference captions.

    Args:
        images: ``(N, 3, H, W)`` uint8 tensor or ``N`` file paths.
        keys: a unique integer per image.
        references: per image, its reference captions (strings).
        encoded: per image, its references as token ids (``<start> ... <end>``).
        sample: return every reference's ids (training draws one per batch); otherwise only the first.
        reader: decodes the files (with file paths); a file it cannot read gives an ``Unreadable``.
        every_caption: one item per (image, caption) pair instead of one per image; each item has its one caption.
    """

    def __init__(
        self,
        images: torch.Tensor | list[Path],
        keys: list[int],
        references: list[list[str]],
        encoded: list[list[list[int]]],
        sample: bool,
        reader: ImageReader | None = None,
        every_caption: bool = False,
    ) -> None:
        assert len(images) == len(keys) == len(references) == len(encoded)
        self.images, self.keys, self.references, self.encoded = images, keys, references, encoded
        self.sample, self.reader = sample, reader or ImageReader()
        self.pairs = [(i, r) for i, refs in enumerate(encoded) for r in range(len(refs))] if every_caption else None

    def __len__(self) -> int:
        return len(self.keys) if self.pairs is None else len(self.pairs)

    def image(self, i: int) -> torch.Tensor | Unreadable:
        """The pixels of image ``i`` (not item ``i``: with ``every_caption`` an image has several items)."""
        if isinstance(self.images, torch.Tensor):
            return self.images[i]
        return read_or_unreadable(self.reader, self.images[i])

    def __getitem__(self, item: int) -> tuple[torch.Tensor, list[torch.Tensor], list[str], int] | Unreadable:
        i, r = (item, None) if self.pairs is None else self.pairs[item]
        image = self.image(i)
        if isinstance(image, Unreadable):
            return image
        if r is not None:  # one (image, caption) pair
            options = self.encoded[i][r : r + 1]
        else:
            options = self.encoded[i] if self.sample else self.encoded[i][:1]
        return image, [torch.tensor(ids, dtype=torch.long) for ids in options], self.references[i], self.keys[i]


def collate_captions(items: list[tuple]) -> dict:
    """Stack images, pad the first reference's ids with ``<pad>`` (0), keep the references as lists.

    Items with several encoded references (training) also give ``options`` ``(B, R, T)`` and ``num_options``.
    """
    images, options, references, keys = zip(*items)
    batch = {
        "images": torch.stack(images),
        "captions": pad(first[0] for first in options),  # (B, T)
        "references": [list(refs) for refs in references],
        "keys": torch.tensor(keys, dtype=torch.long),
    }
    if max(len(o) for o in options) > 1:
        T = max(len(ids) for o in options for ids in o)
        padded = [pad([*o, torch.zeros(T, dtype=torch.long)])[:-1] for o in options]  # each (R_i, T)
        R = max(len(p) for p in padded)
        batch["options"] = torch.stack([torch.cat([p, p.new_zeros(R - len(p), T)]) for p in padded])  # (B, R, T)
        batch["num_options"] = torch.tensor([len(o) for o in options])
    return batch


def pad(sequences) -> torch.Tensor:
    """Token id sequences as one ``(N, T)`` tensor padded with ``<pad>``."""
    return pad_sequence(list(sequences), batch_first=True, padding_value=Vocabulary.PAD)
