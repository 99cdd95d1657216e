"""A classifier's prediction rows from its ONNX file: the columns of ``vlc predict`` (``ImageClassifier``)."""

from collections.abc import Iterable
from typing import Any

import numpy as np


def top_k(probs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest probabilities of each row of ``probs`` ``(B, K)`` and their classes, largest first."""
    index = np.argsort(-probs, axis=1, kind="stable")[:, :k]  # (B, k)
    return np.take_along_axis(probs, index, axis=1), index


def classify(session: Any, record: dict, batches: Iterable[tuple[list[str], np.ndarray]]) -> list[dict]:
    """One row per image: ``file``, ``label``, ``class_index``, ``probability`` and ``top_k`` (label, probability).

    Args:
        session: the classifier's onnxruntime session.
        record: its metadata (``class_names``, ``top_k``).
        batches: ``(files, images)``, images uint8 ``(B, 3, H, W)``.
    """
    names, k = record["class_names"], min(int(record["top_k"]), len(record["class_names"]))
    rows = []
    for files, images in batches:
        (probs,) = session.run(["probabilities"], {"images": images})  # (B, K)
        top_p, top_i = top_k(probs.astype(np.float32), k)
        for file, p, i in zip(files, top_p.tolist(), top_i.tolist()):
            top = [[names[c], round(q, 6)] for c, q in zip(i, p)]
            rows.append({"file": file, "label": top[0][0], "class_index": i[0], "probability": top[0][1], "top_k": top})
    return rows
