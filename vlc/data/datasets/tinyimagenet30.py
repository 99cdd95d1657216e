"""TinyImageNet30 in the coursework layout: ``class.txt``, ``train_set/<name>/*.JPEG``, ``test_set/*.JPEG``."""

import csv
import io
from pathlib import Path

import torch

from vlc.csv_cells import uncell
from vlc.data.datasets.images import FileImages, Samples, labelled_folders
from vlc.errors import UserError
from vlc.images import ImageReader, list_images
from vlc.text_files import inside, read_text


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


def set_folder(folder: Path) -> Path:
    """The original zip nests each set once more (``train_set/train_set``): accept both."""
    inner = folder / folder.name
    return inner if inner.is_dir() else folder


def check_class_folders(train_dir: Path, class_names: list[str], class_file: Path) -> None:
    """Every class of ``class_file`` has its folder in ``train_dir``, and every folder there is such a class.

    Hidden folders (``.ipynb_checkpoints``, ...) are not classes and are left alone.

    Raises:
        UserError: naming the classes without a folder and the folders ``class_file`` does not list.
    """
    if not train_dir.is_dir():
        raise UserError(f"{train_dir}: missing; expected a folder per class of {class_file}")
    folders = {p.name for p in train_dir.iterdir() if p.is_dir() and not p.name.startswith(".")}
    missing = [name for name in class_names if name not in folders]
    unlisted = sorted(folders - set(class_names))
    problems = [f"folders missing for the classes {_names(missing)} of {class_file}"] if missing else []
    problems += [f"{class_file} does not list the folders {_names(unlisted)}"] if unlisted else []
    if problems:
        raise UserError(f"{train_dir}: " + "; ".join(problems) + " (expected one folder per class, named as there)")


def _names(names: list[str], first: int = 5) -> str:
    """``'a', 'b'`` for the first few names, with how many more there are."""
    listed = ", ".join(repr(name) for name in names[:first])
    return listed + (f" and {len(names) - first} more" if len(names) > first else "")


def read_train_set(root: Path, class_names: list[str]) -> Samples:
    """Every training image (``train_set/<name>/*``) with its label, in class order."""
    train_dir = set_folder(root / "train_set")
    check_class_folders(train_dir, class_names, root / "class.txt")
    return labelled_folders(train_dir, class_names, "*.JPEG files")


def read_labels(path: str | Path, class_names: list[str], images: str = "image") -> list[tuple[str, int, int]]:
    """The rows ``(Id, label, line)`` of a labels CSV ``Id,Category`` (the coursework's, Kaggle's form).

    ``Category`` is a class index or a class name of ``class_names``; cells are read as :mod:`vlc.csv_cells` writes
    them. The one reader of such files: the test set's labels (:func:`read_test_set`) and ``vlc report --labels``;
    ``images`` names the images the rows are for, in the message of a file without rows.

    Raises:
        UserError: the file is missing, lacks the header, has a row without two fields, an ``Id`` listed twice, an
            unknown ``Category``, or no rows; naming the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist; expected a CSV with columns Id,Category")
    lookup = {name: i for i, name in enumerate(class_names)}
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    if not {"Id", "Category"} <= set(reader.fieldnames or []):
        raise UserError(f"{path}: expected the header 'Id,Category', got {reader.fieldnames}")
    rows, lines = [], {}  # normalised Id -> line
    for row in reader:
        where = f"{path}, line {reader.line_num}"
        if row["Id"] is None or row["Category"] is None:
            raise UserError(f"{where}: expected two fields 'Id,Category'")
        name, category = uncell(row["Id"]), uncell(row["Category"]).strip()  # as vlc.csv_cells writes them
        key = inside(name) or name
        if key in lines:
            raise UserError(f"{where}: Id {name!r} is already listed on line {lines[key]}")
        lines[key] = reader.line_num
        rows.append((name, _category(category, lookup, where), reader.line_num))
    if not rows:
        raise UserError(f"{path}: no rows; expected a line 'Id,Category' for each {images}")
    return rows


def read_test_set(root: Path, test_labels: str | Path, class_names: list[str]) -> Samples:
    """The images of ``test_set/`` with their labels from ``test_labels`` (a CSV ``Id,Category``, :func:`read_labels`).

    ``Id`` is a file name in ``test_set/``. A test scores every test image once: an ``Id`` that is repeated, missing,
    or outside ``test_set/``, an image of ``test_set/`` without a row, and a file without rows are errors naming the
    file (and the line).
    """
    path = Path(test_labels)
    if not path.is_file():
        raise UserError(f"data.test_labels: {path} does not exist; expected a CSV with columns Id,Category")
    test_dir = set_folder(root / "test_set")
    rows = read_labels(path, class_names, f"image of {test_dir.name}")
    files = [_test_file(test_dir, name, f"{path}, line {line}") for name, _, line in rows]
    _check_all_listed(path, test_dir, set(files))
    return files, torch.tensor([label for _, label, _ in rows])


def _test_file(test_dir: Path, name: str, where: str) -> Path:
    """The file ``test_dir / name``, which must exist and lie inside ``test_dir``."""
    relative = inside(name)
    if relative is None:
        raise UserError(f"{where}: Id {name!r} is not inside {test_dir}; expected a file name of the test set")
    if not (test_dir / relative).is_file():
        raise UserError(f"{where}: image {name!r} not found in {test_dir}")
    return test_dir / relative


def _category(category: str, lookup: dict[str, int], where: str) -> int:
    """The label of ``category``: a class index, or a class name of ``lookup``."""
    if category.isdigit() and int(category) < len(lookup):
        return int(category)
    if category in lookup:
        return lookup[category]
    raise UserError(f"{where}: unknown Category {category!r}; expected 0-{len(lookup) - 1} or a class name")


def _check_all_listed(path: Path, test_dir: Path, listed: set[Path]) -> None:
    """Every image of ``test_dir`` has a row in ``path``: a test of part of the test set is not its score."""
    images = list_images(test_dir)
    unlisted = [file for file in images if file not in listed]
    if unlisted:
        names = ", ".join(str(file.relative_to(test_dir)) for file in unlisted[:3])
        more = ", ..." if len(unlisted) > 3 else ""
        raise UserError(
            f"{path}: no row for {len(unlisted)} of the {len(images)} images of {test_dir} ({names}{more}); "
            "a test scores every test image: add their rows, or move them out of the folder"
        )


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
