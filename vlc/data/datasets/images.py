"""Map-style datasets of uint8 images: in memory (one tensor) or decoded from files on every access.

Each sample is a dict ``{"images": (3, H, W) uint8, field: target, "index": i}``, so torch's default collate makes
the named batches of ``vlc.data.modules.base`` (``field`` is ``labels`` for labelled images, ``files`` for
prediction; ``index``, the sample's position in its dataset, is what per-image augmentation such as
``vlc.data.augment.alternating_flips`` follows across epochs).
"""

from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from vlc.data.bad_images import Unreadable, read_or_unreadable
from vlc.errors import UserError
from vlc.images import ImageReader, list_images

Samples = tuple[list[Path] | torch.Tensor, torch.Tensor]
"""Labelled samples: file paths or a ``(N, 3, H, W)`` uint8 tensor, and a ``(N,)`` tensor of labels."""


def labelled_folders(folder: Path, class_names: Sequence[str], expected: str) -> Samples:
    """The images of ``folder/<class name>/`` for each class, labelled by the class's index, in class order.

    Raises:
        UserError: a class folder holds no image (``expected`` names the files it should hold).
    """
    paths, labels = [], []
    for label, name in enumerate(class_names):
        files = list_images(folder / name)
        if not files:
            raise UserError(f"{folder / name}: no images for class '{name}' (expected {expected})")
        paths += files
        labels += [label] * len(files)
    return paths, torch.tensor(labels)


class TensorImages(Dataset):
    """Images of one ``(N, 3, H, W)`` uint8 tensor, each paired with a target (a label or a file name).

    Args:
        images: the image tensor (shared, never copied: train and validation index the same cache).
        targets: one target per sample.
        index: the rows of ``images`` this dataset holds, in order (all of them when None).
        field: the name of the target in each sample.
    """

    def __init__(
        self, images: torch.Tensor, targets: Sequence, index: Sequence[int] | None = None, field: str = "labels"
    ) -> None:
        self.images, self.targets, self.field = images, targets, field
        self.index = list(range(len(images))) if index is None else list(index)
        assert len(self.index) == len(targets)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        return {"images": self.images[self.index[i]], self.field: self.targets[i], "index": i}


class FileImages(Dataset):
    """Images decoded from ``paths`` at each access, each paired with a target.

    ``paths`` are image files, or any sequence the reader reads (the ``EncodedImage`` items of
    ``vlc.data.datasets.shards.ShardImages``, each read from its chunk only when asked for).

    A file that cannot be decoded gives an :class:`~vlc.data.bad_images.Unreadable` instead of a sample, which
    the loader leaves out of its batch and reports (``vlc.data.bad_images``).
    """

    def __init__(self, paths: Sequence[Path], targets: Sequence, reader: ImageReader, field: str = "labels") -> None:
        assert len(paths) == len(targets)
        paths = paths if isinstance(paths, Sequence) else list(paths)  # a sequence read lazily (shards) stays one
        self.paths, self.targets, self.reader, self.field = paths, targets, reader, field

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict | Unreadable:
        image = read_or_unreadable(self.reader, self.paths[i])
        return image if isinstance(image, Unreadable) else {"images": image, self.field: self.targets[i], "index": i}
