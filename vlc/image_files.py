"""Image files as numpy arrays, without torch: the rules every reader of vlc applies, and the folder scan.

Reading image files into uint8 RGB arrays is the one decoding path for training, evaluation and prediction, inside
vlc (:class:`vlc.images.ImageReader` turns the arrays into tensors) and outside it (``python -m vlc.onnx_predict``
needs only numpy and Pillow). Every file goes through :class:`ImageDecoder`, which turns what phones, cameras and web
scrapes produce into the same ``(H, W, 3)`` uint8 RGB array, and every failure into a reason attached to the file
(:class:`BadImage`):

- the EXIF orientation is applied (portrait phone photos stand upright);
- 16-bit greyscale (``I;16``, ``I``) is scaled to 8 bits (``value / 257``), float images (``F``) are clipped;
- transparency (RGBA, LA, palette or colour-key transparency) is composited on a white background;
- animated GIF and WebP give their first frame; TIFF, CMYK, greyscale and palette images become RGB;
- an image of more than ``max_pixels`` pixels (a decompression bomb: 20000x20000 fits in 48 KB of PNG) is
  refused from its header, before any pixel is decoded.
"""

import contextlib
import errno
import functools
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
UNSUPPORTED = {".heic": "HEIC", ".heif": "HEIF", ".avif": "AVIF", ".svg": "SVG", ".raw": "RAW", ".dng": "DNG"}
"""Image formats that Pillow cannot decode here, by suffix: named in the skip reason."""

MAX_PIXELS = 89_478_485
"""Default pixel limit (PIL's own decompression-bomb limit, about 9459 x 9459)."""

BACKGROUND = (255, 255, 255)
"""The colour transparent pixels are composited on (white)."""

# PIL's own guard raises DecompressionBombError above twice its limit, whatever data.max_image_pixels says; vlc
# reads every image through ImageDecoder, which applies the configurable limit itself and makes it a skip reason.
Image.MAX_IMAGE_PIXELS = None


class BadImage(Exception):
    """A file that cannot be read as an image; ``reason`` says why, in words for the user."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


@dataclass(frozen=True)
class EncodedImage:
    """An image file's bytes as stored somewhere other than a file (a shard of ``vlc data optimize``), and its name.

    Read by :class:`ImageDecoder` like a file, with the same rules and reasons; ``error`` is why the bytes could
    not be stored (the file was missing or unreadable when it was written), given as the reason when it is read.
    """

    name: str
    data: bytes
    error: str | None = None

    def __str__(self) -> str:
        return self.name


Source = str | Path | EncodedImage
"""What an image is read from: a file's path, or its bytes with a name."""


def _source(path: Source) -> Path | EncodedImage:
    return path if isinstance(path, EncodedImage) else Path(path)


@dataclass(frozen=True)
class ImageDecoder:
    """Decodes image files to ``(H, W, 3)`` uint8 RGB arrays (see the module docstring for the rules).

    Args:
        max_pixels: images with more pixels than this are refused (``data.max_image_pixels``).
    """

    max_pixels: int = MAX_PIXELS

    def check(self, path: Source) -> str | None:
        """Why ``path`` cannot be read, from its header alone (no pixel is decoded), or None when it looks fine."""
        try:
            with self.open(_source(path)):
                return None
        except BadImage as bad:
            return bad.reason

    def __call__(self, path: Source) -> np.ndarray:
        """The image at ``path`` (a file, or an :class:`EncodedImage`) as an ``(H, W, 3)`` uint8 array.

        Raises:
            BadImage: the file cannot be opened, is too large, or its pixel data cannot be decoded.
        """
        with self.open(_source(path)) as image:
            try:
                return np.asarray(to_rgb(image), dtype=np.uint8)
            except Exception as err:  # any failure inside PIL's decoders means a damaged file
                raise BadImage(path, f"cannot decode the pixel data ({_describe(err)})") from None

    @contextlib.contextmanager
    def open(self, path: Path | EncodedImage) -> Iterator[Image.Image]:
        """``Image.open(path)`` with every reason it can fail, the pixel limit included, raised as ``BadImage``."""
        stored = isinstance(path, EncodedImage)
        if stored and path.error:
            raise BadImage(path, path.error)
        if not stored and path.is_symlink() and not path.exists():
            raise BadImage(path, _dangling(path))
        try:
            if (len(path.data) if stored else path.stat().st_size) == 0:
                raise BadImage(path, "empty file (0 bytes)")
            image = Image.open(io.BytesIO(path.data) if stored else path)
        except BadImage:
            raise
        except UnidentifiedImageError:
            format_name = UNSUPPORTED.get(Path(str(path)).suffix.lower())
            if format_name:
                raise BadImage(path, f"{format_name} images are not supported (convert it to JPEG or PNG)") from None
            raise BadImage(path, "not an image file (Pillow cannot identify its format)") from None
        except PermissionError:
            raise BadImage(path, "cannot read the file (permission denied)") from None
        except FileNotFoundError:
            raise BadImage(path, "file not found") from None
        except OSError as err:
            if err.errno is not None:
                raise BadImage(path, f"cannot read the file ({err.strerror})") from None
            raise BadImage(path, f"not a readable image ({_describe(err)})") from None
        except Exception as err:  # PIL's header parsers raise SyntaxError, ValueError, ... on garbage
            raise BadImage(path, f"not a readable image ({_describe(err)})") from None
        with image:
            width, height = image.size
            if width * height > self.max_pixels:
                raise BadImage(
                    path,
                    f"too large: {width}x{height} = {width * height:,} pixels, over the limit of "
                    f"{self.max_pixels:,} (data.max_image_pixels)",
                )
            yield image


def to_rgb(image: Image.Image) -> Image.Image:
    """An opened image as upright 8-bit RGB: EXIF orientation, 16-bit scaling, transparency on white.

    Raises:
        OSError, ...: the pixel data cannot be decoded (the first ``load()`` says so; a second would not).
    """
    image.load()
    with contextlib.suppress(Exception):  # a damaged EXIF block leaves the image as stored
        ImageOps.exif_transpose(image, in_place=True)  # in place: no copy of an image already upright
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(image).astype(np.float32)
        if image.mode != "F":
            values = values / 257  # 0..65535 -> 0..255
        elif values.max(initial=0) <= 1:
            values = values * 255  # float images in 0..1
        image = Image.fromarray(values.round().clip(0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (*BACKGROUND, 255)), rgba)
    return image.convert("RGB")


def resize_array(image: np.ndarray, size: int) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 image resized to ``size x size`` as :func:`vlc.images.resize_batch` resizes it, in numpy.

    torch's antialiased bilinear resize (Pillow's separable triangle filter, the support widened by the scale when
    shrinking), reproduced operation by operation: float32 weights computed as torch computes them, the width pass
    then the height pass (whose taps torch's CPU kernel accumulates with fused multiply-adds), then rounded half
    to even and clipped to uint8. On this project's CPUs it gives torch's pixels (``tests/test_export.py``): on 50
    Flickr photographs resized to 64 px, all but 2 of 614,400 values, which are one apart (a value within float32
    rounding of ``.5``); a pixel one apart can move a probability by about 1e-5.
    """
    x = image.astype(np.float32)
    if x.shape[1] != size:
        x = _resample(x, 1, size)
    if x.shape[0] != size:
        x = _resample(x, 0, size)
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _resample(x: np.ndarray, axis: int, size: int) -> np.ndarray:
    """One pass of :func:`resize_array` along ``axis`` (1: the width pass, 0: the height pass) of a float32 array."""
    index, weight = _taps(x.shape[axis], size)  # (size, taps) each
    x = np.moveaxis(x, axis, -1)
    out = x[..., index[:, 0]] * weight[:, 0]  # the first tap: a plain product
    for j in range(1, index.shape[1]):
        if axis == 1:  # torch's width pass: out += x * w, rounded twice
            out += x[..., index[:, j]] * weight[:, j]
        else:  # its height pass (vectorised): fused, the exact product and sum rounded once
            out = (x[..., index[:, j]].astype(np.float64) * weight[:, j] + out).astype(np.float32)
    return np.moveaxis(out, -1, axis)


@functools.lru_cache(maxsize=64)
def _taps(length: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The input positions and float32 weights of each output position, ``(size, taps)``; unused taps weigh 0."""
    f32 = np.float32  # the C++ types of torch's _compute_indices_min_size_weights_aa, float or double each
    scale = f32(length) / f32(size)
    support, inverse = (scale, f32(1.0 / float(scale))) if scale >= 1 else (f32(1.0), f32(1.0))
    rows = []
    for i in range(size):
        center = f32(float(scale) * (i + 0.5))
        first = max(int(float(center - support) + 0.5), 0)
        last = min(int(float(center + support) + 0.5), length)
        distance = [abs(f32((float(f32(j) - center) + 0.5) * float(inverse))) for j in range(first, last)]
        weights = np.array([f32(1) - d if d < 1 else f32(0) for d in distance], dtype=f32)
        total = f32(0)
        for w in weights:
            total = f32(total + w)
        rows.append((first, weights / total if total != 0 else weights))
    taps = max(len(w) for _, w in rows)
    index = np.array([[min(first + j, length - 1) for j in range(taps)] for first, _ in rows])
    weight = np.array([np.pad(w, (0, taps - len(w))) for _, w in rows], dtype=f32)
    return index, weight


def _dangling(path: Path) -> str:
    """Why the symbolic link ``path`` leads to no file: a loop of links, or a missing target."""
    try:
        path.stat()
    except OSError as err:
        if err.errno == errno.ELOOP:
            return f"symbolic link loop (to {path.readlink()}; the links never reach a file)"
    return f"broken symbolic link (to {path.readlink()})"


def _describe(err: Exception) -> str:
    text = str(err).strip()
    return text if text else type(err).__name__


def list_images(folder: str | Path) -> list[Path]:
    """Every file under ``folder`` (recursively, sorted) named like an image, broken links and HEIC included."""
    return [path for path, other in scan_folder(folder) if other is None]


def scan_folder(folder: str | Path) -> list[tuple[Path, str | None]]:
    """Every file under ``folder`` (recursively, sorted), each with the reason it is left out.

    The reason is None for a file named like an image: the reader then reads it, or says why not.
    """
    names, expected = IMAGE_SUFFIXES | set(UNSUPPORTED), ", ".join(sorted(IMAGE_SUFFIXES))
    entries = []
    for path in sorted(Path(folder).rglob("*")):
        if path.is_dir():
            continue
        named_like_image = path.suffix.lower() in names
        entries.append((path, None if named_like_image else f"not an image file name (expected {expected})"))
    return entries
