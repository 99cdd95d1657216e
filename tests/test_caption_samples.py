"""The dashboard's caption samples: a figure whose captions never run over an image, and a markdown table."""

import re

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from vlc.metrics.caption_samples import caption_samples_figure, caption_samples_markdown

WORDS = "a man in a wetsuit riding a large wave on top of a white surfboard while people watch from the beach".split()


def caption(i: int, words: int) -> str:
    """A caption of ``words`` words that starts with ``sample{i}``, the mark of its image."""
    return " ".join([f"sample{i}", *(WORDS * 3)[i : i + words - 1]])


def cell(boxes: list[Bbox], i: int, figure: Bbox) -> Bbox:
    """The part of the figure that belongs to image ``i``: up to halfway to its left and right neighbours, and up
    to the images of the rows above and below (or the figure's edges)."""
    box = boxes[i]
    left = max([b.x1 for b in boxes if b.x1 <= box.x0], default=figure.x0)
    right = min([b.x0 for b in boxes if b.x0 >= box.x1], default=figure.x1)
    below = max([b.y1 for b in boxes if b.y1 <= box.y0], default=figure.y0)
    above = min([b.y0 for b in boxes if b.y0 >= box.y1], default=figure.y1)
    return Bbox.from_extents((left + box.x0) / 2, below, (right + box.x1) / 2, above)


def misplaced_captions(fig) -> list[str]:
    """Captions (text artists with a ``sample{i}`` mark) outside their image's cell or over any image."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    images = [ax.get_window_extent(renderer) for ax in fig.axes if ax.images]  # in sample order
    figure = fig.bbox
    texts = [t for t in fig.findobj(Text) if t.get_visible() and re.search(r"sample\d+", t.get_text())]
    assert {int(re.search(r"sample(\d+)", t.get_text())[1]) for t in texts} == set(range(len(images)))
    wrong = []
    for text in texts:
        box, i = text.get_window_extent(renderer), int(re.search(r"sample(\d+)", text.get_text())[1])
        own = cell(images, i, figure)
        inside = own.x0 <= box.x0 and box.x1 <= own.x1 and own.y0 <= box.y0 and box.y1 <= own.y1
        if not inside or any(box.overlaps(image) for image in images):
            wrong.append(text.get_text()[:30])
    return wrong


@pytest.mark.parametrize(
    ("n", "words", "height", "width"),
    [(6, 40, 64, 64), (5, 12, 48, 64), (1, 80, 64, 32)],
    ids=["6 long captions", "5 short, wide images", "1 very long, tall image"],
)
def test_captions_stay_in_their_cell_below_the_image(n, words, height, width):
    images = torch.randint(0, 256, (n, 3, height, width), dtype=torch.uint8)
    generated = [caption(i, words) for i in range(n)]
    references = [[caption(i, words + 3), "a second reference"] for i in range(n)]
    fig = caption_samples_figure(images, generated, references)
    try:
        assert misplaced_captions(fig) == []
        assert len(fig.texts) == 2 * n  # generated and first reference
    finally:
        plt.close(fig)


def test_long_words_are_cut_and_empty_captions_shown():
    images = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    fig = caption_samples_figure(images, ["sample0 " + "x" * 200, ""], [["sample0 ok"], ["sample1 a cat"]])
    try:
        assert misplaced_captions(fig) == []
        assert [t.get_text() for t in fig.texts[2:]] == ["gen: (empty)", "ref: sample1 a cat"]
    finally:
        plt.close(fig)


def test_captions_are_not_read_as_math():
    fig = caption_samples_figure(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), ["costs $5 or $6"], [["$x^2$"]])
    try:
        fig.canvas.draw()
        assert [t.get_text() for t in fig.texts] == ["gen: costs $5 or $6", "ref: $x^2$"]
        assert not any(t.get_parse_math() for t in fig.texts)
    finally:
        plt.close(fig)


def test_markdown_table_lists_every_reference():
    table = caption_samples_markdown(["a | b", ""], [["r1", "r2"], ["r3"]])
    assert table.splitlines()[2:] == ["| 0 | a / b | r1<br>r2 |", "| 1 | (empty) | r3 |"]
