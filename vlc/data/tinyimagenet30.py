"""TinyImageNet30 in the coursework layout: ``class.txt``, ``train_set/<name>/*.JPEG``, ``test_set/*.JPEG``."""

import csv
import io
from pathlib import Path

import torch

from vlc.data.classification import ClassificationDataModule, Samples
from vlc.data.datasets import FileImages
from vlc.data.image_io import ImageReader, list_images
from vlc.data.text import read_text
from vlc.errors import UserError


def read_class_file(path: Path) -> list[str]:
    """Class names from ``class.txt`` (lines ``idx<TAB>name``), in index order.

    A BOM and CRLF line endings are accepted; a duplicate name or index, a gap in the indices or a line that is
    not ``idx<TAB>name`` is an error naming the file and the line.
    """
    if not path.is_file():
        raise UserError(f"{path}: missing; expected a class list with lines 'idx<TAB>name'")
    names: dict[int, str] = {}
    lines: dict[str, int] = {}  # name -> line
    index_lines: dict[int, int] = {}  # index -> line
    for lineno, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        if len(fields) != 2 or not fields[0].strip().isdigit() or not fields[1].strip():
            raise UserError(f"{path}, line {lineno}: expected 'idx<TAB>name', got {line!r}")
        index, name = int(fields[0]), fields[1].strip()
        if index in names:
            raise UserError(f"{path}, line {lineno}: index {index} is already used on line {index_lines[index]}")
        if name in lines:
            raise UserError(f"{path}, line {lineno}: class name {name!r} is already used on line {lines[name]}")
        names[index], lines[name], index_lines[index] = name, lineno, lineno
    if not names:
        raise UserError(f"{path}: no classes; expected lines 'idx<TAB>name'")
    missing = sorted(set(range(len(names))) - set(names))
    if missing:
        raise UserError(
            f"{path}: class indices must be 0..{len(names) - 1} without gaps; missing {missing[:5]}, "
            f"highest {max(names)}"
        )
    return [names[i] for i in range(len(names))]


def _nested(folder: Path) -> Path:
    """The original zip nests each set once more (``train_set/train_set``): accept both."""
    inner = folder / folder.name
    return inner if inner.is_dir() else folder


def read_train_set(root: Path, class_names: list[str]) -> Samples:
    """Every training image (``train_set/<name>/*``) with its label, in class order."""
    train_dir = _nested(root / "train_set")
    paths, labels = [], []
    for label, name in enumerate(class_names):
        folder = train_dir / name
        if not folder.is_dir():
            raise UserError(f"{folder}: missing; class.txt names class {label} '{name}'")
        files = list_images(folder)
        if not files:
            raise UserError(f"{folder}: no images for class '{name}' (expected *.JPEG files)")
        paths += files
        labels += [label] * len(files)
    return paths, torch.tensor(labels)


def read_test_set(root: Path, test_labels: str | Path, class_names: list[str]) -> Samples:
    """The test images named by ``test_labels`` (a CSV ``Id,Category``: file name, class index or name)."""
    path = Path(test_labels)
    if not path.is_file():
        raise UserError(f"data.test_labels: {path} does not exist; expected a CSV with columns Id,Category")
    test_dir = _nested(root / "test_set")
    lookup = {name: i for i, name in enumerate(class_names)}
    paths, labels = [], []
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    if not {"Id", "Category"} <= set(reader.fieldnames or []):
        raise UserError(f"{path}: expected the header 'Id,Category', got {reader.fieldnames}")
    for lineno, row in enumerate(reader, 2):
        file = test_dir / row["Id"]
        if not file.is_file():
            raise UserError(f"{path}, line {lineno}: image {row['Id']!r} not found in {test_dir}")
        category = row["Category"].strip()
        if category.isdigit() and int(category) < len(class_names):
            labels.append(int(category))
        elif category in lookup:
            labels.append(lookup[category])
        else:
            raise UserError(f"{path}, line {lineno}: unknown Category {category!r}; expected 0-29 or a class name")
        paths.append(file)
    return paths, torch.tensor(labels)


class TinyImageNet30(FileImages):
    """TinyImageNet30 as a plain ``Dataset`` of ``{"images", "labels"}`` samples, usable without Lightning.

    Args:
        root: the dataset folder holding ``class.txt``, ``train_set/`` and ``test_set/``.
        split: ``train`` (every training image) or ``test`` (the images of ``test_labels``).
        test_labels: the ``Id,Category`` CSV of the test images (``split: test`` only).
        reader: how the files are decoded (default: RGB at their own size).
    """

    def __init__(
        self, root: str | Path, split: str = "train", test_labels: str | None = None, reader: ImageReader | None = None
    ) -> None:
        root = Path(root)
        self.class_names = read_class_file(root / "class.txt")
        if split == "test" and test_labels is None:
            raise UserError("TinyImageNet30: split 'test' needs test_labels (the Id,Category CSV)")
        paths, labels = (
            read_train_set(root, self.class_names)
            if split == "train"
            else read_test_set(root, test_labels, self.class_names)
        )
        super().__init__(paths, labels, reader or ImageReader())


class TinyImageNet30DataModule(ClassificationDataModule):
    """TinyImageNet30 (30 classes, 64x64) read from the coursework layout (``TinyImageNet30`` for Lightning).

    Args:
        root: the dataset folder holding ``class.txt``, ``train_set/`` and ``test_set/``.
        test_labels: a CSV with columns ``Id,Category`` (file name, class index or name) for ``test_set``;
            with it ``vlc test`` reports test accuracy. Without it, ``vlc predict`` predicts ``test_set``.
        **kwargs: the shared options of ``ClassificationDataModule`` (batch size, augmentation, cache, ...).
    """

    def __init__(self, root: str, test_labels: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.root = Path(root)
        if not self.root.is_dir():
            raise UserError(f"data.root: {self.root} is not a folder; expected the extracted TinyImageNet30")
        self.test_labels = test_labels
        self._class_names = read_class_file(self.root / "class.txt")

    @property
    def class_names(self) -> list[str]:
        return list(self._class_names)

    def labelled(self, split: str) -> Samples | None:
        if split == "train":
            return read_train_set(self.root, self._class_names)
        return None if self.test_labels is None else read_test_set(self.root, self.test_labels, self._class_names)

    def predict_folder(self) -> str | Path:
        """``predict_dir`` when given, else ``test_set/``."""
        return self.predict_dir if self.predict_dir is not None else _nested(self.root / "test_set")
