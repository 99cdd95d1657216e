"""Build TinyImageNet30 in the coursework layout from the official Tiny ImageNet-200 download.

The source is the folder ``tiny-imagenet-200/`` extracted from ``tiny-imagenet-200.zip`` (or its parent). The
output holds:

- ``class.txt``: lines ``idx<TAB>name``, the 30 classes in alphabetical order;
- ``train_set/<name>/*.JPEG``: the first ``train_per_class`` training images of each class (lowest ids);
- ``test_set/*.JPEG``: the 50 Tiny ImageNet validation images of each class, names kept (``val_123.JPEG``);
- ``test_labels.csv``: ``Id,Category`` with the file name and the class index from ``class.txt``.

Every source file is checked before anything is written; files are copied as they are (never re-encoded)
into a hidden ``.partial-*`` folder inside the output, then moved into place.
"""

import re
import shutil
import tempfile
from pathlib import Path

from vlc.csv_cells import write_rows
from vlc.errors import UserError

CLASSES: dict[str, str] = {
    "baboon": "n02486410",
    "banana": "n07753592",
    "bee": "n02206856",
    "bison": "n02410509",
    "butterfly": "n02279972",
    "candle": "n02948072",
    "cardigan": "n02963159",
    "chihuahua": "n02085620",
    "elephant": "n02504458",
    "espresso": "n07920052",
    "fly": "n02190166",
    "goldfish": "n01443537",
    "goose": "n01855672",
    "grasshopper": "n02226429",
    "hourglass": "n03544143",
    "icecream": "n07614500",
    "ipod": "n03584254",
    "jellyfish": "n01910747",
    "koala": "n01882714",
    "ladybug": "n02165456",
    "lion": "n02129165",
    "mushroom": "n07734744",
    "penguin": "n02056570",
    "pig": "n02395406",
    "pizza": "n07873807",
    "pretzel": "n07695742",
    "redpanda": "n02509815",
    "refrigerator": "n04070727",
    "sombrero": "n04259630",
    "umbrella": "n04507155",
}
"""The 30 classes, name -> WordNet id, in alphabetical order of name (the order of ``class.txt``)."""

_OUTPUTS = ("class.txt", "train_set", "test_set", "test_labels.csv")


def build_tinyimagenet30(source: str | Path, out: str | Path, train_per_class: int = 450) -> dict:
    """Convert Tiny ImageNet-200 into TinyImageNet30 in the coursework layout.

    Args:
        source: the extracted ``tiny-imagenet-200`` folder, or the folder that contains it.
        out: the output folder; created if missing, it must not already hold a dataset.
        train_per_class: how many training images to keep per class, those with the lowest ids.

    Returns:
        The number of images written: ``{"train": ..., "test": ...}``.

    Raises:
        UserError: the source is missing or incomplete, or ``out`` already holds a dataset.
    """
    if train_per_class < 1:
        raise UserError(f"train_per_class must be at least 1, got {train_per_class}")
    root = _source_root(Path(source))
    out = Path(out)
    _check_out(out)
    train = {name: _train_images(root, name, wnid, train_per_class) for name, wnid in CLASSES.items()}
    test = _val_images(root)
    _write(out, train, test)
    return {"train": sum(len(files) for files in train.values()), "test": len(test)}


def _source_root(source: Path) -> Path:
    """The ``tiny-imagenet-200`` folder: ``source`` itself or its child of that name."""
    if not source.is_dir():
        raise UserError(f"{source}: not found; expected the extracted tiny-imagenet-200 folder")
    nested = source / "tiny-imagenet-200"
    root = nested if nested.is_dir() else source
    if not (root / "train").is_dir():
        raise UserError(f"{root}: no 'train' folder; expected the extracted tiny-imagenet-200 folder")
    return root


def _check_out(out: Path) -> None:
    """Refuse an output that is a file or already holds (part of) a dataset: never overwrite user files."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; expected an output folder")
    for name in _OUTPUTS:
        path = out / name
        if (path.is_dir() and any(path.iterdir())) or (path.exists() and not path.is_dir()):
            raise UserError(f"{path}: already exists with content; refusing to overwrite it")


def _numeric_id(path: Path) -> tuple[int, str]:
    """Sort key by the number after the last underscore: ``n01443537_12.JPEG`` -> 12 (so 10 sorts after 9)."""
    match = re.search(r"_(\d+)\.[^.]*$", path.name)
    return (int(match.group(1)) if match else -1, path.name)


def _train_images(root: Path, name: str, wnid: str, count: int) -> list[Path]:
    """The ``count`` training images of one class with the lowest numeric ids."""
    folder = root / "train" / wnid / "images"
    if not folder.is_dir():
        raise UserError(f"{folder}: missing; expected the training images of class '{name}' ({wnid})")
    pattern = re.compile(rf"{wnid}_\d+\.JPEG", re.IGNORECASE)
    files = sorted((f for f in folder.iterdir() if pattern.fullmatch(f.name)), key=_numeric_id)
    if len(files) < count:
        raise UserError(
            f"{folder}: {len(files)} images of class '{name}' ({wnid}); expected at least {count}"
            f" named '{wnid}_<n>.JPEG'"
        )
    return files[:count]


def _val_images(root: Path) -> list[tuple[Path, int]]:
    """The validation images of the 30 classes with their class index, sorted by numeric id."""
    annotations = root / "val" / "val_annotations.txt"
    if not annotations.is_file():
        raise UserError(f"{annotations}: missing; expected the validation labels 'file<TAB>wnid<TAB>box'")
    index = {wnid: i for i, wnid in enumerate(CLASSES.values())}
    images = root / "val" / "images"
    rows = []
    for lineno, line in enumerate(annotations.read_text().splitlines(), 1):
        fields = line.split("\t")
        if not line.strip():
            continue
        if len(fields) < 2:
            expected = "file<TAB>wnid<TAB>x0<TAB>y0<TAB>x1<TAB>y1"
            raise UserError(f"{annotations}, line {lineno}: expected '{expected}', got {line!r}")
        if fields[1] in index:
            rows.append((_val_file(images, fields[0], annotations, lineno), index[fields[1]]))
    _check_every_class(annotations, rows)
    return sorted(rows, key=lambda row: _numeric_id(row[0]))


def _val_file(images: Path, name: str, annotations: Path, lineno: int) -> Path:
    """The validation image named on an annotation line, which must exist."""
    file = images / name
    if not file.is_file():
        raise UserError(f"{annotations}, line {lineno}: image {name!r} not found in {images}")
    return file


def _check_every_class(annotations: Path, rows: list[tuple[Path, int]]) -> None:
    """Each of the 30 classes needs at least one validation image."""
    found = {label for _, label in rows}
    for label, (name, wnid) in enumerate(CLASSES.items()):
        if label not in found:
            raise UserError(f"{annotations}: no validation images of class '{name}' ({wnid}); expected 50")


def _write(out: Path, train: dict[str, list[Path]], test: list[tuple[Path, int]]) -> None:
    """Copy everything into a hidden partial folder inside ``out``, then move the pieces into place."""
    out.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=out))
    try:
        _write_all(partial, train, test)
        for name in _OUTPUTS:
            if (out / name).is_dir():
                (out / name).rmdir()  # checked empty upfront
            (partial / name).rename(out / name)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _write_all(folder: Path, train: dict[str, list[Path]], test: list[tuple[Path, int]]) -> None:
    """Write the four outputs into ``folder``."""
    (folder / "class.txt").write_text("".join(f"{i}\t{name}\n" for i, name in enumerate(CLASSES)))
    for name, files in train.items():
        (folder / "train_set" / name).mkdir(parents=True)
        for file in files:
            shutil.copy2(file, folder / "train_set" / name / file.name)
    (folder / "test_set").mkdir()
    for file, _ in test:
        shutil.copy2(file, folder / "test_set" / file.name)
    with (folder / "test_labels.csv").open("w", newline="") as f:
        write_rows(f, ("Id", "Category"), ((file.name, label) for file, label in test))
