"""TinyImageNet30 in the coursework layout: ``class.txt``, ``train_set/<name>/*.JPEG``, ``test_set/*.JPEG``."""

import csv
from pathlib import Path

import torch

from vlc.data.classification import ClassificationDataModule, Samples
from vlc.data.image_io import folder_images, list_images
from vlc.errors import UserError


def read_class_file(path: Path) -> list[str]:
    """Class names from ``class.txt`` (lines ``idx<TAB>name``), in index order."""
    if not path.is_file():
        raise UserError(f"{path}: missing; expected a class list with lines 'idx<TAB>name'")
    names: dict[int, str] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        if len(fields) != 2 or not fields[0].strip().isdigit():
            raise UserError(f"{path}, line {lineno}: expected 'idx<TAB>name', got {line!r}")
        names[int(fields[0])] = fields[1].strip()
    if sorted(names) != list(range(len(names))) or not names:
        raise UserError(f"{path}: class indices must be 0..N-1 without gaps, got {sorted(names)}")
    return [names[i] for i in range(len(names))]


def _nested(folder: Path) -> Path:
    """The original zip nests each set once more (``train_set/train_set``): accept both."""
    inner = folder / folder.name
    return inner if inner.is_dir() else folder


class TinyImageNet30DataModule(ClassificationDataModule):
    """TinyImageNet30 (30 classes, 64x64) read from the coursework layout.

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
        return self._train_samples() if split == "train" else self._test_samples()

    def _train_samples(self) -> Samples:
        train_dir = _nested(self.root / "train_set")
        paths, labels = [], []
        for label, name in enumerate(self._class_names):
            folder = train_dir / name
            if not folder.is_dir():
                raise UserError(f"{folder}: missing; class.txt names class {label} '{name}'")
            files = list_images(folder)
            if not files:
                raise UserError(f"{folder}: no images for class '{name}' (expected *.JPEG files)")
            paths += files
            labels += [label] * len(files)
        return paths, torch.tensor(labels)

    def _test_samples(self) -> Samples | None:
        if self.test_labels is None:
            return None
        path = Path(self.test_labels)
        if not path.is_file():
            raise UserError(f"data.test_labels: {path} does not exist; expected a CSV with columns Id,Category")
        test_dir = _nested(self.root / "test_set")
        lookup = {name: i for i, name in enumerate(self._class_names)}
        paths, labels = [], []
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            if not {"Id", "Category"} <= set(reader.fieldnames or []):
                raise UserError(f"{path}: expected the header 'Id,Category', got {reader.fieldnames}")
            for lineno, row in enumerate(reader, 2):
                paths.append(self._test_file(test_dir, row["Id"], path, lineno))
                labels.append(self._label(row["Category"], lookup, path, lineno))
        return paths, torch.tensor(labels)

    @staticmethod
    def _test_file(test_dir: Path, name: str, csv_path: Path, lineno: int) -> Path:
        file = test_dir / name
        if not file.is_file():
            raise UserError(f"{csv_path}, line {lineno}: image {name!r} not found in {test_dir}")
        return file

    def _label(self, category: str, lookup: dict[str, int], csv_path: Path, lineno: int) -> int:
        category = category.strip()
        if category.isdigit() and int(category) < len(self._class_names):
            return int(category)
        if category in lookup:
            return lookup[category]
        raise UserError(f"{csv_path}, line {lineno}: unknown Category {category!r}; expected 0-29 or a class name")

    def predict_files(self) -> list[Path]:
        if self.predict_dir is not None:
            return super().predict_files()
        return folder_images(_nested(self.root / "test_set"))
