"""Reading image files into uint8 tensors: the one decoding path for training, evaluation and prediction."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from vlc.errors import UserError, warn

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def read_image(path: str | Path, size: int | None = None) -> torch.Tensor:
    """Decode one file to a ``(3, H, W)`` uint8 RGB tensor (greyscale, palette and RGBA become RGB).

    Args:
        path: the image file.
        size: when given, resize to ``size x size`` (bilinear, antialiased).

    Raises:
        OSError, UnidentifiedImageError: the file is missing or not a decodable image.
    """
    with Image.open(path) as image:
        image = image.convert("RGB")
        if size is not None and image.size != (size, size):
            image = image.resize((size, size), Image.BILINEAR)
        array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)


def read_images(paths: Sequence[Path], size: int | None = None) -> torch.Tensor:
    """Decode many files into one ``(N, 3, H, W)`` uint8 tensor; all must share a size unless ``size`` is set.

    Raises:
        UserError: a file cannot be decoded or its size differs from the first image's.
    """
    images = []
    for path in paths:
        image = read_image_checked(path, size)
        if images and image.shape != images[0].shape:
            raise UserError(
                f"{path}: image is {tuple(image.shape[1:])} but {paths[0]} is {tuple(images[0].shape[1:])}; "
                "set data.image_size to resize every image to one size"
            )
        images.append(image)
    if not images:
        return torch.empty(0, 3, size or 0, size or 0, dtype=torch.uint8)
    return torch.stack(images)


def read_image_checked(path: Path, size: int | None) -> torch.Tensor:
    """:func:`read_image`, with a file that cannot be decoded reported as a ``UserError`` naming it."""
    try:
        return read_image(path, size)
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise UserError(f"{path}: cannot decode image ({err})") from None


def list_images(folder: str | Path) -> list[Path]:
    """Every file under ``folder`` (recursively) whose suffix is an image suffix, in sorted order."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def readable_images(paths: Sequence[Path]) -> list[Path]:
    """Keep the files PIL can decode; warn once per skipped file and once with the total count."""
    good, skipped = [], 0
    for path in paths:
        try:
            with Image.open(path) as image:
                image.convert("RGB").load()
            good.append(path)
        except (OSError, UnidentifiedImageError, ValueError) as err:
            skipped += 1
            warn(f"skipping {path}: not a decodable image ({err})")
    if skipped:
        warn(f"skipped {skipped} of {len(paths)} image files that could not be decoded")
    return good


def resize_batch(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a ``(B, 3, H, W)`` uint8 batch to ``size x size`` (bilinear), keeping uint8."""
    if images.shape[-2:] == (size, size):
        return images
    out = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8)


def folder_images(folder: str | Path) -> list[Path]:
    """The decodable images under ``folder`` (recursively); undecodable ones are skipped with a warning.

    Raises:
        UserError: ``folder`` is not a folder or holds no readable image.
    """
    if not Path(folder).is_dir():
        raise UserError(f"{folder}: not a folder (data.predict_dir must be a folder of images)")
    files = readable_images(list_images(folder))
    if not files:
        raise UserError(f"{folder}: no readable images (expected .jpg, .jpeg, .png, .bmp or .webp files)")
    return files
