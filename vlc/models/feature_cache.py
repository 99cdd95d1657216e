"""A store of per-image encoder features, so that a frozen encoder runs once per image and not once per epoch.

:class:`FeatureCache` is the store, :func:`open_feature_cache` sizes one, :class:`CachedEncoder` puts one in front of
an encoder; ``vlc.callbacks.feature_cache.FeatureCaching`` opens and drops it around fitting.
"""

import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from vlc.errors import warn
from vlc.memory import available_memory

DTYPES = {"float32": torch.float32, "float16": torch.float16}
"""Storage dtypes by name (a numpy memory map cannot hold bfloat16)."""

MEMORY_FRACTION = 0.5
"""Share of the available memory that a ``memory`` cache may take (the rest is for the data loaders, the model)."""


class FeatureCache:
    """Features by image key, in memory (CPU tensors) or in a file (a growing memory map).

    Only valid while the encoder and its input do not change: a frozen encoder in eval mode, no augmentation.
    Features are stored in ``dtype``; :meth:`get` returns them so, :meth:`features` in the dtype of ``encode``.

    Args:
        path: ``None`` keeps the features in memory; a file path stores them there instead (for data whose
            features do not fit in memory). The file is created, grown as needed and removed by :meth:`close`.
        dtype: the storage dtype, ``float32`` or ``float16`` (half the memory, about 3 significant digits).
        capacity: rows of the file when it is created; it doubles whenever it is full.
    """

    def __init__(self, path: str | Path | None = None, dtype: torch.dtype | str = torch.float32, capacity: int = 1024):
        self.path = None if path is None else Path(path)
        self.dtype = DTYPES[dtype] if isinstance(dtype, str) else dtype
        if self.dtype not in DTYPES.values():
            raise ValueError(f"feature cache dtype must be one of {', '.join(DTYPES)}, not {dtype}")
        self.capacity = capacity
        self.memory: dict[int, torch.Tensor] = {}
        self.rows: dict[int, int] = {}  # key -> row of the file
        self.table: np.memmap | None = None
        self.hits = self.misses = 0
        self.encoded_dtype = torch.float32  # of the features given to put, which features() returns
        self.description = f"feature cache: {'memory' if self.path is None else f'disk ({self.path})'}"
        """One line for the log; :func:`open_feature_cache` adds the size."""

    def __len__(self) -> int:
        return len(self.rows) if self.path is not None else len(self.memory)

    def __contains__(self, key: int) -> bool:
        return key in (self.rows if self.path is not None else self.memory)

    def get(self, keys: list[int]) -> torch.Tensor:
        """Stacked features ``(B, ...)`` of ``keys`` (all must be present), on the CPU, in the storage dtype."""
        if self.path is None:
            return torch.stack([self.memory[k] for k in keys])
        rows = np.fromiter((self.rows[k] for k in keys), dtype=np.int64, count=len(keys))
        return torch.from_numpy(np.asarray(self.table[rows]))  # reads these rows only, not the file

    def put(self, keys: list[int], features: torch.Tensor) -> None:
        """Store ``features`` ``(B, ...)``, one row per key."""
        self.encoded_dtype = features.dtype
        features = features.detach().to("cpu", self.dtype)
        if self.path is None:
            self.memory.update(zip(keys, features.clone().unbind(0)))
            return
        self._reserve(len(self.rows) + len(keys), features.shape[1:])
        rows = [self.rows.setdefault(key, len(self.rows)) for key in keys]
        self.table[rows] = features.numpy()

    def _reserve(self, rows: int, shape: torch.Size) -> None:
        if self.table is not None and rows <= self.table.shape[0]:
            return
        capacity = max(self.capacity, rows, 2 * (0 if self.table is None else self.table.shape[0]))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.table is not None:
            self.table.flush()
        with open(self.path, "ab") as f:  # grow the file, keeping the rows written so far
            f.truncate(capacity * math.prod(shape) * self.dtype.itemsize)
        numpy_dtype = torch.empty(0, dtype=self.dtype).numpy().dtype
        self.table = np.memmap(self.path, dtype=numpy_dtype, mode="r+", shape=(capacity, *shape))

    def features(self, keys: torch.Tensor, images: torch.Tensor, encode: Callable) -> torch.Tensor:
        """Features of a batch: cached rows are read, the others computed by ``encode(images[missing])`` and stored.

        New features are rounded to the storage dtype too, so that an image gets the same features in every epoch.

        Args:
            keys: image keys ``(B,)``.
            images: the batch ``(B, ...)``.
            encode: maps images to features ``(b, ...)``.

        Returns:
            Features ``(B, ...)`` on the device of ``images``, in the dtype that ``encode`` returns.
        """
        keys_list = keys.tolist()
        missing = [i for i, k in enumerate(keys_list) if k not in self]
        self.hits += len(keys_list) - len(missing)
        self.misses += len(missing)
        if not missing:
            cached = self.get(keys_list).to(images.device, non_blocking=True)  # then cast: fewer bytes to copy
            return cached.to(self.encoded_dtype)
        if len(missing) == len(keys_list):
            new = encode(images)
            self.put(keys_list, new)
            return new if new.dtype == self.dtype else new.to(self.dtype).to(new.dtype)
        new = encode(images.index_select(0, torch.tensor(missing, device=images.device)))
        self.put([keys_list[i] for i in missing], new)
        return self.get(keys_list).to(images.device, new.dtype)

    def close(self) -> None:
        """Forget every feature and remove the file, if any."""
        self.memory.clear()
        self.rows.clear()
        self.table = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def open_feature_cache(
    mode: Literal["auto", "memory", "disk"],
    num_images: int,
    feature_shape: tuple[int, ...],
    dtype: torch.dtype | str,
    folder: str | Path,
    name: str,
    budget_bytes: int | None = None,
) -> FeatureCache:
    """A feature cache in memory or on disk, chosen from the size of the features before any is computed.

    ``auto`` keeps them in memory when they fit in the memory budget, on disk otherwise; ``memory`` that would not
    fit goes to disk too, with a warning. The cache's ``description`` is a line for the log (where, how much).

    Args:
        mode: ``auto``, ``memory`` or ``disk``.
        num_images: the images the cache will hold (with DDP, those that one process may see over all epochs).
        feature_shape: the shape of one image's features, e.g. ``(49, 2048)``.
        dtype: the storage dtype, ``float32`` or ``float16``.
        folder: where a disk cache's file goes; it is named ``name`` plus ``.f32`` or ``.f16``.
        name: the file name without extension, e.g. ``feature_cache_rank0``.
        budget_bytes: the most memory that a memory cache may take; by default a share (``MEMORY_FRACTION``) of
            the memory available now, no limit where that is unknown.

    Returns:
        An empty cache, which removes its file (if any) when closed.
    """
    dtype = DTYPES[dtype] if isinstance(dtype, str) else dtype
    size = num_images * math.prod(feature_shape) * dtype.itemsize
    if budget_bytes is None:
        available = available_memory()
        budget_bytes = None if available is None else int(available * MEMORY_FRACTION)
    fits = budget_bytes is None or size <= budget_bytes
    path = Path(folder) / f"{name}.f{dtype.itemsize * 8}"
    what = f"{num_images:,} images x {'x'.join(map(str, feature_shape))} {str(dtype).removeprefix('torch.')}"
    if mode == "memory" and not fits:
        hint = " or float16 features (half the size)" if dtype == torch.float32 and size // 2 <= budget_bytes else ""
        warn(
            f"feature cache: memory needs {format_bytes(size)} ({what}), over the memory budget of "
            f"{format_bytes(budget_bytes)}, so the features go to disk ({path}); choose the disk cache{hint} "
            "to silence this"
        )
    cache = FeatureCache(path if mode == "disk" or not fits else None, dtype, capacity=max(num_images, 1))
    cache.description += f", {what} = {format_bytes(size)}"
    if cache.path is not None:
        free = shutil.disk_usage(next(p for p in path.parents if p.exists())).free
        if free < size:
            warn(f"feature cache: {format_bytes(size)} ({what}) will not fit the {format_bytes(free)} free in {folder}")
    return cache


class CachedEncoder:
    """``encode`` with an optional :class:`FeatureCache` in front: while one is open, keyed images are encoded once.

    Only valid while ``encode`` computes the same features for an image every time: open a cache only while the
    encoder is frozen in eval mode and the images are not augmented.

    Args:
        encode: maps a uint8 batch ``(B, 3, H, W)`` to features ``(B, ...)``.
        encoder: the module that ``encode`` runs (its device, ``image_size`` and mode for the size probe).
    """

    def __init__(self, encode: Callable[[torch.Tensor], torch.Tensor], encoder: nn.Module) -> None:
        self.encode, self.encoder = encode, encoder
        self.cache: FeatureCache | None = None

    def __call__(self, images: torch.Tensor, keys: torch.Tensor | None = None) -> torch.Tensor:
        """Features ``(B, ...)`` of ``images``: through the open cache when the images have ``keys`` ``(B,)``."""
        if self.cache is None or keys is None:
            return self.encode(images)
        return self.cache.features(keys, images, self.encode)

    def feature_shape(self) -> tuple[int, ...]:
        """The shape of one image's features, from one blank image at the encoder's size (224 when it has none)."""
        size = getattr(self.encoder, "image_size", None) or 224
        device = next(self.encoder.parameters()).device
        was_training = self.encoder.training
        with torch.no_grad():  # in eval mode: a probe must not move batch-norm statistics
            self.encoder.eval()
            shape = tuple(self.encode(torch.zeros(1, 3, size, size, dtype=torch.uint8, device=device)).shape[1:])
        self.encoder.train(was_training)
        return shape  # e.g. (h*w, C) or (C,)

    def open(
        self, mode: Literal["auto", "memory", "disk"], num_images: int, dtype: str, folder: Path, name: str
    ) -> str:
        """Open an empty cache for ``num_images`` images (see :func:`open_feature_cache`); returns its description."""
        self.close()
        self.cache = open_feature_cache(mode, num_images, self.feature_shape(), dtype, folder, name)
        return self.cache.description

    def close(self) -> str | None:
        """Drop the cache and its file, if any; a line on what it served (None: no cache was open)."""
        cache, self.cache = self.cache, None
        if cache is None:
            return None
        report = f"feature cache: {len(cache)} images, {cache.hits} hits, {cache.misses} misses"
        cache.close()
        return report


def format_bytes(size: float) -> str:
    """``size`` with 3 significant digits in B, kB, MB, GB or TB (powers of 1000): ``"248 MB"``, ``"43.5 GB"``."""
    units = ["B", "kB", "MB", "GB", "TB"]
    while size >= 999.5 and len(units) > 1:
        size /= 1000
        units.pop(0)
    return f"{size:.3g} {units[0]}"
