"""Images embedded in the report: small copies as ``data:`` URIs, so that the page needs no other file."""

import base64
import io
from pathlib import Path

from PIL import Image

from vlc.images import BadImage, ImageReader

THUMBNAIL = 160
"""The longest side of an image's thumbnail, in pixels (overlays get twice that: their heat map has detail)."""


def data_uri(path: Path, size: int = THUMBNAIL) -> str:
    """The image at ``path`` (read by vlc's one image reader) shrunk to at most ``size`` pixels, as a ``data:`` URI.

    Small images are enlarged to ``size`` without smoothing (the shapes and 16-pixel test images stay visible);
    photographs are shrunk and stored as JPEG, the others as PNG.

    Raises:
        BadImage: the file cannot be read as an image.
    """
    pixels = ImageReader()(path).permute(1, 2, 0).numpy()  # (3, H, W) -> (H, W, 3)
    image = Image.fromarray(pixels)
    scale = size / max(image.size)
    target = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    image = image.resize(target, Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS)
    photo = path.suffix.lower() in (".jpg", ".jpeg")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG" if photo else "PNG", quality=85)
    kind = "jpeg" if photo else "png"
    return f"data:image/{kind};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def try_data_uri(path: Path | None, size: int = THUMBNAIL) -> tuple[str | None, str | None]:
    """``(uri, None)`` for a readable image, ``(None, why)`` for a missing or unreadable one."""
    if path is None:
        return None, "image not found"
    try:
        return data_uri(path, size), None
    except BadImage as bad:
        return None, bad.reason
