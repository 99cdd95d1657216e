"""CIFAR-10 from torchvision's pickled batches (``cifar-10-batches-py/``) or from image folders (``train/<class>/``)."""

import pickle
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from vlc.data.datasets.images import FileImages, Samples, TensorImages, labelled_folders
from vlc.data.image_cache import over_memory
from vlc.errors import UserError, warn
from vlc.images import ImageReader, resize_batch

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
"""The class names in label order, as in ``batches.meta``."""

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
BATCHES = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))

LAYOUTS = (
    f"either torchvision's format {BATCHES}/ (data_batch_1..5, test_batch, batches.meta from {URL}) "
    "or image folders train/<class>/*.png|jpg and test/<class>/*"
)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only plain containers and numpy arrays: a CIFAR batch file cannot run code when loaded."""

    ALLOWED = {
        ("_codecs", "encode"),  # how protocol 2 stores bytes
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"unexpected object {module}.{name}")


def read_pickle(path: Path) -> dict[str, object]:
    """Load one file of the pickled CIFAR format as a dict with ``str`` keys (the files use bytes or str keys).

    Raises:
        UserError: the file is missing, corrupt or not a dict.
    """
    if not path.is_file():
        raise UserError(f"{path}: missing; {BATCHES}/ needs data_batch_1..5, test_batch and batches.meta")
    try:
        with path.open("rb") as f:
            content = _ArrayUnpickler(f, encoding="latin1").load()  # latin1: numpy arrays pickled by Python 2
    except Exception as err:  # truncated, garbage, wrong objects: all mean "not a CIFAR batch"
        raise UserError(f"{path}: not a readable CIFAR pickle ({type(err).__name__}: {err})") from None
    if not isinstance(content, dict):
        raise UserError(f"{path}: expected a pickled dict, got {type(content).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in content.items()}


def read_batch(path: Path, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)`` of one batch file (``data``: ``(N, 3072)`` rows)."""
    batch = read_pickle(path)
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels is None:
        raise UserError(f"{path}: expected keys 'data' (an N x 3072 uint8 array) and 'labels' (N class indices)")
    labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    if len(labels) != len(data) or (len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < num_classes):
        raise UserError(f"{path}: 'labels' must hold {len(data)} class indices in 0..{num_classes - 1}")
    images = torch.from_numpy(data.astype(np.uint8, copy=False)).reshape(-1, 3, 32, 32)
    return images, labels


def class_folders(folder: Path) -> list[str]:
    """Names of the sub-folders of ``folder``, sorted (CIFAR-10's label order is alphabetical)."""
    return sorted(p.name for p in folder.iterdir() if p.is_dir())


def batches_dir(root: Path) -> Path:
    """The folder of the pickled format (``root`` itself when it holds ``batches.meta``)."""
    return root if (root / "batches.meta").is_file() else root / BATCHES


def layout(root: Path) -> str | None:
    """``pickle``, ``folders`` or None (no CIFAR-10 in ``root``)."""
    if batches_dir(root).is_dir():
        return "pickle"
    return "folders" if (root / "train").is_dir() else None


def missing(root: Path) -> UserError:
    """The error for a ``root`` that holds no CIFAR-10."""
    return UserError(
        f"data.root: no CIFAR-10 in {root}; put it there as {LAYOUTS}, or set data.download: true when online"
    )


def read_class_names(root: Path) -> list[str]:
    """The class names in label order: from ``batches.meta``, or the (checked) class folders of ``train/``."""
    if layout(root) == "pickle":
        names = read_pickle(batches_dir(root) / "batches.meta").get("label_names")
        if not isinstance(names, list) or not names:
            raise UserError(f"{batches_dir(root) / 'batches.meta'}: expected a non-empty list 'label_names'")
        return [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    if layout(root) is None:
        raise missing(root)
    train, test = root / "train", root / "test"
    names = class_folders(train)
    if not names:
        raise UserError(f"{train}: no class folders; expected train/<class>/ for the classes {CIFAR10_CLASSES}")
    if test.is_dir():
        test_names = class_folders(test)
        only_test, only_train = sorted(set(test_names) - set(names)), sorted(set(names) - set(test_names))
        if only_test:
            raise UserError(f"{train / only_test[0]}: missing; {test} has a folder for class '{only_test[0]}'")
        if only_train:
            raise UserError(f"{test / only_train[0]}: missing; {train} has a folder for class '{only_train[0]}'")
    if set(names) != set(CIFAR10_CLASSES):
        warn(f"{train}: the class folders {names} are not the 10 CIFAR-10 classes; using them as they are")
    return names


def read_split(root: Path, split: str, class_names: list[str], image_size: int | None = None) -> Samples | None:
    """The ``train`` or ``test`` samples: a uint8 tensor (pickles, resized to ``image_size``) or files (folders).

    None for a missing ``test/`` folder.
    """
    if layout(root) is None:
        raise missing(root)
    if layout(root) == "folders":
        folder = root / split
        if split == "test" and not folder.is_dir():
            return None
        return labelled_folders(folder, class_names, ".png or .jpg files")
    batches = [
        read_batch(batches_dir(root) / name, len(class_names))
        for name in (TRAIN_FILES if split == "train" else ("test_batch",))
    ]
    images = torch.cat([b[0] for b in batches])
    if image_size is not None:
        what = f"CIFAR-10 {'training' if split == 'train' else 'test'} images"
        problem = over_memory(len(images), image_size, image_size, what)
        if problem is not None:
            raise UserError(f"data.image_size: {problem}; choose a smaller data.image_size")
        images = resize_batch(images, image_size)
    return images, torch.cat([b[1] for b in batches])


class Cifar10(Dataset):
    """CIFAR-10 (either layout) as a plain ``Dataset`` of ``{"images", "labels"}`` samples, usable without Lightning.

    Args:
        root: the dataset folder (``cifar-10-batches-py/`` or ``train/<class>/``, ``test/<class>/``).
        split: ``train`` or ``test``.
        image_size: resize every image to this side length (``null``: 32).
    """

    def __init__(self, root: str | Path, split: str = "train", image_size: int | None = None) -> None:
        root = Path(root)
        self.class_names = read_class_names(root)
        samples = read_split(root, split, self.class_names, image_size)
        if samples is None:
            raise UserError(f"{root / split}: missing; expected a folder per class")
        images, labels = samples
        self.dataset = (
            TensorImages(images, labels)
            if isinstance(images, torch.Tensor)
            else FileImages(images, labels, ImageReader(image_size))
        )

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        return self.dataset[i]
