"""The in-memory image cache: every image of a split decoded once into one preallocated uint8 tensor.

Its size is estimated first (from the target size, or the first image's header), and a cache that would take
more than half of the available memory is not built: the data module then decodes the files every epoch.
The tensor is allocated once at its final size and filled in place, so the peak is the cache itself.
"""

from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from vlc.data.bad_images import BadImages, Unreadable, check_files, read_or_unreadable
from vlc.errors import UserError, warn
from vlc.images import ImageReader
from vlc.memory import available_memory


def load_readable(
    paths: Sequence[Path], reader: ImageReader, bad: BadImages, cache: bool, what: str, agree=lambda fits: fits
) -> tuple[torch.Tensor | list[Path], list[int]]:
    """The files of ``paths`` that can be read, decoded into the cache or as files; the others go to ``bad``.

    A header check of every file, then, with ``cache`` (and when it fits in memory), the cache build, which
    finds the files whose pixel data is damaged. ``bad`` is left for the caller to settle.

    Args:
        paths: the image files.
        reader: decodes them.
        bad: receives the files that cannot be read.
        cache: build the in-memory cache.
        what: what the files are, for messages (``training images``).
        agree: turns this process's answer to "does the cache fit?" into the one all processes use (DDP).

    Returns:
        The cache ``(N, 3, H, W)`` or the readable files, and their ``N`` positions in ``paths``.
    """
    kept = check_files(paths, reader, bad)
    files = [paths[i] for i in kept]
    if cache and agree(cache_fits(files, reader, what)):
        images, rows = read_images(files, reader, bad)
        return images, [kept[r] for r in rows]
    return files, kept


def over_memory(n: int, height: int, width: int, what: str) -> str | None:
    """Why ``n`` uint8 RGB images of ``height x width`` do not fit in half the available memory, or None."""
    need, available = n * 3 * height * width, available_memory()
    if available is None or need <= available // 2:
        return None
    return f"the {n} {what} at {width}x{height} need {_size(need)}, more than half of the {_size(available)} available"


def _size(n_bytes: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes / 2**10:.1f} KiB"


def cache_fits(paths: Sequence[Path], reader: ImageReader, what: str) -> bool:
    """Whether decoding ``paths`` fits in half the available memory; warn (and say what happens) if not."""
    if not paths:
        return True
    if reader.size is not None:
        height = width = reader.size
    else:
        try:
            with Image.open(paths[0]) as image:
                width, height = image.size
        except Exception:  # the header check has passed it; a failure here only costs the estimate
            return True
    problem = over_memory(len(paths), height, width, what)
    if problem is None:
        return True
    warn(
        f"data.cache: {problem}; decoding the files every epoch instead (set a smaller data.image_size, use fewer "
        "images, or set data.cache: false to silence this)"
    )
    return False


def read_images(paths: Sequence[Path], reader: ImageReader, bad: BadImages) -> tuple[torch.Tensor, list[int]]:
    """Decode ``paths`` into one ``(N, 3, H, W)`` uint8 tensor; files that fail go to ``bad``.

    The caller settles ``bad`` once every file has been tried, so that all bad ones are named at once.

    Returns:
        The images that could be read, and their positions in ``paths``.

    Raises:
        UserError: an image's size differs from the first one's (without ``reader.size``).
    """
    images: torch.Tensor | None = None
    kept: list[int] = []
    for i, path in enumerate(paths):
        image = read_or_unreadable(reader, path)
        if isinstance(image, Unreadable):
            bad.add(path, image.reason)
            continue
        if images is None:
            images = torch.empty((len(paths), *image.shape), dtype=torch.uint8)  # the final size, allocated once
        elif image.shape != images.shape[1:]:
            raise UserError(
                f"{path}: image is {tuple(image.shape[1:])} but {paths[kept[0]]} is {tuple(images.shape[2:])}; "
                "set data.image_size to resize every image to one size"
            )
        images[len(kept)] = image
        kept.append(i)
    if images is None:
        size = reader.size or 0
        return torch.empty(0, 3, size, size, dtype=torch.uint8), kept
    return images[: len(kept)], kept
