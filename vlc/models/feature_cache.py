"""A store of per-image encoder features, so that a frozen encoder runs once per image and not once per epoch."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch


class FeatureCache:
    """Features by image key, in memory (CPU tensors) or in a file (a growing float32 memory map).

    Only valid while the encoder and its input do not change: a frozen encoder in eval mode, no augmentation.

    Args:
        path: ``None`` keeps the features in memory; a file path stores them there instead (for data whose
            features do not fit in memory). The file is created, grown as needed and removed by :meth:`close`.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.memory: dict[int, torch.Tensor] = {}
        self.rows: dict[int, int] = {}  # key -> row of the file
        self.table: np.memmap | None = None
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self.rows) if self.path is not None else len(self.memory)

    def __contains__(self, key: int) -> bool:
        return key in (self.rows if self.path is not None else self.memory)

    def get(self, keys: list[int]) -> torch.Tensor:
        """Stacked features ``(B, ...)`` of ``keys`` (all must be present), on the CPU."""
        if self.path is None:
            return torch.stack([self.memory[k] for k in keys])
        return torch.from_numpy(np.stack([self.table[self.rows[k]] for k in keys]))

    def put(self, keys: list[int], features: torch.Tensor) -> None:
        """Store ``features`` ``(B, ...)``, one row per key."""
        features = features.detach().cpu()
        if self.path is None:
            self.memory.update(zip(keys, features.clone().unbind(0)))
            return
        self._reserve(len(self.rows) + len(keys), features.shape[1:])
        for key, row in zip(keys, features.float().numpy()):
            self.table[self.rows.setdefault(key, len(self.rows))] = row

    def _reserve(self, rows: int, shape: torch.Size) -> None:
        if self.table is not None and rows <= self.table.shape[0]:
            return
        capacity = max(1024, rows, 2 * (0 if self.table is None else self.table.shape[0]))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.table is not None:
            self.table.flush()
        with open(self.path, "ab") as f:  # grow the file, keeping the rows written so far
            f.truncate(capacity * int(np.prod(shape)) * 4)
        self.table = np.memmap(self.path, dtype=np.float32, mode="r+", shape=(capacity, *shape))

    def features(self, keys: torch.Tensor, images: torch.Tensor, encode: Callable) -> torch.Tensor:
        """Features of a batch: cached rows are read, the others computed by ``encode(images[missing])`` and stored.

        Args:
            keys: image keys ``(B,)``.
            images: the batch ``(B, ...)``.
            encode: maps images to features ``(b, ...)``.

        Returns:
            Features ``(B, ...)`` on the device of ``images``.
        """
        keys_list = keys.tolist()
        missing = [i for i, k in enumerate(keys_list) if k not in self]
        self.hits += len(keys_list) - len(missing)
        self.misses += len(missing)
        if not missing:
            return self.get(keys_list).to(images.device, non_blocking=True)
        if len(missing) == len(keys_list):
            new = encode(images)
            self.put(keys_list, new)
            return new
        index = torch.tensor(missing, device=images.device)
        new = encode(images.index_select(0, index))
        self.put([keys_list[i] for i in missing], new)
        return self.get(keys_list).to(images.device, dtype=new.dtype)

    def close(self) -> None:
        """Forget every feature and remove the file, if any."""
        self.memory.clear()
        self.rows.clear()
        self.table = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)
