"""A classifier as one ONNX file: uint8 images ``(N, 3, H, W)`` in, class probabilities ``(N, K)`` out."""

from pathlib import Path

import torch
from torch import nn

from vlc.export.onnx_file import export_onnx
from vlc.tasks.classifier import ImageClassifier


class ClassProbabilities(nn.Module):
    """What ``vlc predict`` computes from a batch: the backbone's preprocessing, the test-time views, softmax.

    Args:
        task: the classifier, in evaluation mode (its ``flip_average`` and ``translate_average`` apply).
    """

    def __init__(self, task: ImageClassifier) -> None:
        super().__init__()
        self.task = task

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Probabilities ``(N, K)`` of a uint8 batch ``(N, 3, H, W)``."""
        return self.task(images).float().softmax(dim=-1)


def export_classifier(task: ImageClassifier, output: Path, metadata: dict) -> list[str]:
    """Write ``output``; what was written, in words (one line per file)."""
    size = metadata["image_size"]
    metadata = {
        **metadata,
        "class_names": list(task.class_names),
        "top_k": int(task.hparams.top_k),
        "flip_average": bool(task.hparams.flip_average),
        "translate_average": bool(task.hparams.translate_average),
    }
    generator = torch.Generator().manual_seed(0)
    # a batch of 2 and a side other than the model's, so that neither the batch axis nor the resize is frozen out
    example = torch.randint(0, 256, (2, 3, size + 7, size + 3), dtype=torch.uint8, generator=generator)
    check = torch.randint(0, 256, (3, 3, size, size), dtype=torch.uint8, generator=generator)
    axes = {0: torch.export.Dim("N", min=1), 2: torch.export.Dim("H", min=2), 3: torch.export.Dim("W", min=2)}
    difference = export_onnx(
        ClassProbabilities(task),
        {"images": example},
        ["probabilities"],
        {"images": axes},
        output,
        metadata,
        {"images": check},
    )
    views = (3 if metadata["translate_average"] else 1) * (2 if metadata["flip_average"] else 1)
    return [
        f"wrote {output}: {len(task.class_names)} classes, images at {size}x{size}, {views} test-time "
        f"view{'s' if views > 1 else ''} (flip_average {metadata['flip_average']}, translate_average "
        f"{metadata['translate_average']}); largest difference from the checkpoint's probabilities {difference:.1g}"
    ]
