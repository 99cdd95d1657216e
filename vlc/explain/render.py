"""Pictures of explanations: a heat map blended over an image, in labelled square frames (PNG-ready PIL images).

Every frame is ``FRAME`` pixels square with a text band below it, so a picture of ``n`` frames side by side is
``n * FRAME`` pixels wide whatever the images' size.
"""

import matplotlib
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from vlc.images import resize_batch

FRAME = 160
"""Pixels of one frame's side."""
BAND = 24
"""Pixels of the text band below each frame."""
FONT_SIZE = 14
ALPHA = 0.5
"""Weight of the heat map where it is blended over the image."""
COLOURS = matplotlib.colormaps["jet"]
"""The heat map's colours (blue: none, red: the most), as in Grad-CAM's and Show, Attend and Tell's figures."""


def heat_frame(image: torch.Tensor, heat: torch.Tensor | None) -> np.ndarray:
    """One frame ``(FRAME, FRAME, 3)`` uint8: ``image`` (uint8 ``(3, H, W)``) with ``heat`` (``(H, W)``, 0-1) over it.

    ``heat`` None: the image alone.
    """
    picture = resize_batch(image[None].cpu(), FRAME)[0].permute(1, 2, 0).numpy().astype(np.float32)  # (F, F, 3)
    if heat is None:
        return picture.astype(np.uint8)
    heat = torch.nn.functional.interpolate(heat[None, None].float().cpu(), size=(FRAME, FRAME), mode="bilinear")[0, 0]
    colours = COLOURS(heat.clamp(0, 1).numpy())[..., :3] * 255  # (F, F, 3)
    return ((1 - ALPHA) * picture + ALPHA * colours).round().clip(0, 255).astype(np.uint8)


def strip(frames: list[np.ndarray], labels: list[str]) -> Image.Image:
    """``frames`` side by side, each with its label in the band below: ``(FRAME + BAND) x (len(frames) * FRAME)``."""
    picture = Image.new("RGB", (FRAME * max(1, len(frames)), FRAME + BAND), "white")
    draw, font = ImageDraw.Draw(picture), ImageFont.load_default(size=FONT_SIZE)
    for i, (frame, label) in enumerate(zip(frames, labels)):
        picture.paste(Image.fromarray(frame), (i * FRAME, 0))
        text = fit(label, font, FRAME - 6)
        draw.text((i * FRAME + FRAME / 2, FRAME + BAND / 2), text, fill="black", font=font, anchor="mm")
    return picture


def fit(text: str, font: ImageFont.ImageFont, width: float) -> str:
    """``text``, cut with an ellipsis where it would be wider than ``width`` pixels."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "...") > width:
        text = text[:-1]
    return text + "..."


def classification_overlay(image: torch.Tensor, heat: torch.Tensor, label: str, probability: float) -> Image.Image:
    """The image above the predicted class, then the image under its heat map above the class's probability."""
    return strip([heat_frame(image, None), heat_frame(image, heat)], [label, f"p = {probability:.3f}"])


def attention_strip(image: torch.Tensor, heats: torch.Tensor, words: list[str]) -> Image.Image:
    """One frame per word: ``image`` under the word's attention map (``heats`` ``(T, H, W)``), the word below it.

    A caption without words gives one frame of the image alone.
    """
    if not words:
        return strip([heat_frame(image, None)], ["(empty caption)"])
    return strip([heat_frame(image, heat) for heat in heats], words)


def stack(pictures: list[Image.Image]) -> Image.Image:
    """``pictures`` one below the other on white, left-aligned (strips of different lengths)."""
    width = max(p.width for p in pictures)
    out = Image.new("RGB", (width, sum(p.height for p in pictures)), "white")
    top = 0
    for p in pictures:
        out.paste(p, (0, top))
        top += p.height
    return out
