"""Tiny CIFAR-10 datasets in both on-disk layouts the data module reads (torchvision's pickles, image folders)."""

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from vlc.data.datasets.cifar10 import CIFAR10_CLASSES


def cifar_image(rng: np.random.Generator, label: int, size: int = 32) -> np.ndarray:
    """A learnable ``(size, size, 3)`` image: the class sets the mean colour, noise makes each image different."""
    base = np.array([(label * 67) % 256, (label * 131) % 256, (label * 199) % 256], dtype=np.float32)
    return np.clip(base + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)


def _dump(path: Path, content: dict) -> None:
    with path.open("wb") as f:
        pickle.dump(content, f, protocol=2)


def write_cifar_pickles(root: Path, per_class: int = 4, test_per_class: int = 1, seed: int = 0) -> Path:
    """Write ``root/cifar-10-batches-py`` with the real structure (5 train batches, test batch, meta); return it."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.repeat(np.arange(len(CIFAR10_CLASSES)), per_class)
    rng.shuffle(labels)
    rows = np.stack([cifar_image(rng, int(c)).transpose(2, 0, 1).reshape(-1) for c in labels])  # (N, 3072), CHW
    for i, (data, batch_labels) in enumerate(zip(np.array_split(rows, 5), np.array_split(labels, 5)), 1):
        _dump(
            folder / f"data_batch_{i}",
            {
                b"batch_label": f"training batch {i} of 5".encode(),
                b"labels": [int(c) for c in batch_labels],
                b"data": data,
                b"filenames": [f"img_{i}_{j}.png".encode() for j in range(len(data))],
            },
        )
    test_labels = np.repeat(np.arange(len(CIFAR10_CLASSES)), test_per_class)
    test_rows = np.stack([cifar_image(rng, int(c)).transpose(2, 0, 1).reshape(-1) for c in test_labels])
    _dump(
        folder / "test_batch",
        {b"batch_label": b"testing batch 1 of 1", b"labels": test_labels.tolist(), b"data": test_rows},
    )
    _dump(
        folder / "batches.meta",
        {b"num_cases_per_batch": 10000, b"label_names": [n.encode() for n in CIFAR10_CLASSES], b"num_vis": 3072},
    )
    return folder


def write_cifar_folders(
    root: Path, per_class: int = 3, test_per_class: int = 1, classes: tuple[str, ...] = CIFAR10_CLASSES
) -> Path:
    """Write ``root/train/<class>/*.jpg`` and ``root/test/<class>/*.jpg`` (32x32, as in ``cifar10.tar``)."""
    rng = np.random.default_rng(1)
    for split, count in (("train", per_class), ("test", test_per_class)):
        for label, name in enumerate(classes):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.fromarray(cifar_image(rng, label)).save(root / split / name / f"{i:04d}.jpg")
    return root
