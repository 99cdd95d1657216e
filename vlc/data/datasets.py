"""Map-style datasets of uint8 images: in memory (one tensor) or decoded from files on every access."""

from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from vlc.data.image_io import read_image


class TensorImages(Dataset):
    """Images held as one ``(N, 3, H, W)`` uint8 tensor, each paired with a target (a label or a file name)."""

    def __init__(self, images: torch.Tensor, targets: Sequence) -> None:
        assert len(images) == len(targets)
        self.images, self.targets = images, targets

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, object]:
        return self.images[i], self.targets[i]


class FileImages(Dataset):
    """Images decoded from ``paths`` at each access (optionally resized), each paired with a target."""

    def __init__(self, paths: Sequence[Path], targets: Sequence, size: int | None = None) -> None:
        assert len(paths) == len(targets)
        self.paths, self.targets, self.size = list(paths), targets, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, object]:
        return read_image(self.paths[i], self.size), self.targets[i]
