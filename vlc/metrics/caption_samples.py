"""Sample images with their generated and reference captions, for the dashboard (a figure and a text table)."""

import textwrap

import matplotlib

matplotlib.use("Agg")  # no display on servers and in tests
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


def caption_samples_figure(images: torch.Tensor, generated: list[str], references: list[list[str]]):
    """A grid of images (uint8 ``(N, 3, H, W)``), each titled with its generated and first reference caption."""
    n = len(images)
    cols = min(4, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, gen, refs in zip(axes.flat, images, generated, references):
        ax.imshow(image.permute(1, 2, 0).cpu().numpy())
        title = "\n".join(textwrap.wrap(f"gen: {gen}", 42) + textwrap.wrap(f"ref: {refs[0]}", 42))
        ax.set_title(title, fontsize=7, loc="left")
    fig.tight_layout()
    return fig


def caption_samples_markdown(generated: list[str], references: list[list[str]]) -> str:
    """A markdown table (TensorBoard's text tab renders it): sample number, generated caption, references."""
    lines = ["| # | generated | references |", "|---|---|---|"]
    for i, (gen, refs) in enumerate(zip(generated, references)):
        cell = "<br>".join(ref.replace("|", "/") for ref in refs)
        lines.append(f"| {i} | {gen.replace('|', '/') or '(empty)'} | {cell} |")
    return "\n".join(lines)
