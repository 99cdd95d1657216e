"""Image files and tensors, apart from any dataset: the one decoder, the one resize, which files are images.

Reading image files into uint8 RGB tensors is the one decoding path for training, evaluation and prediction. The
rules (EXIF orientation, 16-bit images, transparency, the pixel limit, the reasons a file is skipped) and the folder
scan need no torch and live in :mod:`vlc.image_files`, which the torch-free ONNX predictor uses too; this module
turns their arrays into ``(3, H, W)`` tensors and holds the resize every model applies.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vlc.image_files import (  # noqa: F401 (the names every reader of images imports from here)
    BACKGROUND,
    IMAGE_SUFFIXES,
    MAX_PIXELS,
    UNSUPPORTED,
    BadImage,
    EncodedImage,
    ImageDecoder,
    Source,
    list_images,
    scan_folder,
    to_rgb,
)


@dataclass(frozen=True)
class ImageReader:
    """Decodes image files to ``(3, H, W)`` uint8 RGB tensors (the rules: :mod:`vlc.image_files`).

    Args:
        size: resize to ``size x size`` (bilinear, antialiased) when given.
        max_pixels: images with more pixels than this are refused (``data.max_image_pixels``).
    """

    size: int | None = None
    max_pixels: int = MAX_PIXELS

    def check(self, path: Source) -> str | None:
        """Why ``path`` cannot be read, from its header alone (no pixel is decoded), or None when it looks fine."""
        return ImageDecoder(self.max_pixels).check(path)

    def __call__(self, path: Source) -> torch.Tensor:
        """The image at ``path`` (a file, or an :class:`~vlc.image_files.EncodedImage`) as a ``(3, H, W)`` uint8 tensor.

        Raises:
            BadImage: the file cannot be opened, is too large, or its pixel data cannot be decoded.
        """
        array = ImageDecoder(self.max_pixels)(path)
        image = torch.from_numpy(array.copy()).permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)
        return image if self.size is None else resize_batch(image[None], self.size)[0]


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Vlc's one resize: ``(B, 3, H, W)`` float images to ``size x size``, bilinear and antialiased.

    Used when files or tensors are loaded (:func:`resize_batch`) and by the backbone on its input.
    """
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def resize_batch(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a ``(B, 3, H, W)`` uint8 batch to ``size x size`` with :func:`resize`, keeping uint8."""
    if images.shape[-2:] == (size, size):
        return images
    out = resize(images.float(), size)
    return out.round().clamp(0, 255).to(torch.uint8)
