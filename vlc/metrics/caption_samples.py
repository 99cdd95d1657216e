"""Sample images with their generated and reference captions, for the dashboard (a figure and a text table)."""

import math
import textwrap

import matplotlib

matplotlib.use("Agg")  # no display on servers and in tests
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402
from matplotlib.textpath import TextToPath  # noqa: E402

CELL_WIDTH = 3.2
"""Inches of an image and of its captions below it."""
GAP = 0.2
"""Inches between cells and around the grid."""
FONT_SIZE = 8.0
LINE_HEIGHT = 1.35 * FONT_SIZE / 72
"""Inches of one caption line (matplotlib's line spacing is 1.2 font sizes, plus room for descenders)."""


def caption_samples_figure(images: torch.Tensor, generated: list[str], references: list[list[str]]):
    """A grid of images (uint8 ``(N, 3, H, W)``), each above its generated and first reference caption.

    Captions are wrapped to the image's width and every row is as tall as its longest captions, so that no text
    runs over an image, whatever the captions' length.
    """
    n = len(images)
    cols = min(4, n)
    image_height = CELL_WIDTH * images.shape[2] / images.shape[3]
    captions = [
        (wrap(f"gen: {gen or '(empty)'}"), wrap(f"ref: {refs[0] if refs else ''}"))
        for gen, refs in zip(generated, references)
    ]
    text_heights = [len(gen + ref) * LINE_HEIGHT for gen, ref in captions]
    row_heights = [image_height + 1.5 * GAP + max(text_heights[r : r + cols]) for r in range(0, n, cols)]
    width, height = cols * (CELL_WIDTH + GAP) + GAP, sum(row_heights) + GAP
    fig = plt.figure(figsize=(width, height))
    for i, (image, (gen, ref)) in enumerate(zip(images, captions)):
        left = GAP + (i % cols) * (CELL_WIDTH + GAP)
        top = height - GAP - sum(row_heights[: i // cols])  # inches from the bottom, as matplotlib counts
        ax = fig.add_axes((left / width, (top - image_height) / height, CELL_WIDTH / width, image_height / height))
        ax.imshow(image.permute(1, 2, 0).cpu().numpy())
        ax.axis("off")
        text_top = top - image_height - GAP / 2
        for lines, color, offset in ((gen, "black", 0), (ref, "dimgray", len(gen))):
            y = (text_top - offset * LINE_HEIGHT) / height
            fig.text(left / width, y, "\n".join(lines), va="top", fontsize=FONT_SIZE, color=color, parse_math=False)
    return fig


def wrap(text: str) -> list[str]:
    """``text`` in lines that fit :data:`CELL_WIDTH` at :data:`FONT_SIZE`, measured with the default font."""
    font, measure = FontProperties(size=FONT_SIZE), TextToPath().get_text_width_height_descent
    limit = 0.95 * CELL_WIDTH * 72  # points, with a margin for the hinting of the renderer
    chars = math.ceil(limit / (0.45 * FONT_SIZE))  # more characters than fit: 0.45 font size is narrow
    while True:
        lines = textwrap.wrap(text, chars) or [""]
        widest = max(measure(line, font, ismath=False)[0] for line in lines)
        if widest <= limit or chars == 1:
            return lines
        chars = max(1, min(chars - 1, int(chars * limit / widest)))


def caption_samples_markdown(generated: list[str], references: list[list[str]]) -> str:
    """A markdown table (TensorBoard's text tab renders it): sample number, generated caption, references."""
    lines = ["| # | generated | references |", "|---|---|---|"]
    for i, (gen, refs) in enumerate(zip(generated, references)):
        cell = "<br>".join(ref.replace("|", "/") for ref in refs)
        lines.append(f"| {i} | {gen.replace('|', '/') or '(empty)'} | {cell} |")
    return "\n".join(lines)
