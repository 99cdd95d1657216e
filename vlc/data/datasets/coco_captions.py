"""COCO captions: images of a folder with their reference captions from a ``captions_*.json`` file."""

import csv
import json
from collections import Counter, defaultdict
from pathlib import Path

import torch
from torch.utils.data import Dataset

from vlc.data.bad_images import Unreadable, read_or_unreadable
from vlc.errors import UserError, warn
from vlc.images import ImageReader
from vlc.text_files import inside, read_text
from vlc.vocabulary import tokenize


def read_captions_file(path: str | Path) -> tuple[list, list]:
    """The ``images`` and ``annotations`` lists of a COCO captions JSON file.

    Raises:
        UserError: the file is missing, is not valid JSON, or lacks the ``images`` or ``annotations`` list.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data.captions_file: {path} does not exist (expected e.g. captions_train2017.json)")
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise UserError(f"{path}, line {err.lineno}, column {err.colno}: not valid JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object with 'images' and 'annotations', got a {type(data).__name__}")
    for key in ("annotations", "images"):
        if not isinstance(data.get(key), list):
            raise UserError(
                f"{path}: no '{key}' list; a COCO captions file (captions_train2017.json format) has 'images' "
                "(id, file_name) and 'annotations' (image_id, caption)"
            )
    return data["images"], data["annotations"]


def read_subset_csv(path: str | Path) -> tuple[str, list]:
    """The images a subset CSV lists: ``("id", [ints])`` from its ``id`` column, else ``("file_name", [names])``.

    Raises:
        UserError: the file is missing or has neither an ``id`` nor a ``file_name`` column.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data.subset_csv: {path} does not exist")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows, columns = list(reader), reader.fieldnames or []
    except (UnicodeDecodeError, csv.Error) as err:
        raise UserError(f"data.subset_csv: {path} is not a readable UTF-8 CSV file ({err})") from None
    if "id" in columns:
        try:
            return "id", [int(row["id"]) for row in rows]
        except ValueError as err:
            raise UserError(f"{path}: the 'id' column must hold image ids ({err})") from None
    if "file_name" in columns:
        return "file_name", [row["file_name"] for row in rows]
    raise UserError(f"{path}: expected an 'id' or 'file_name' column (like coco_subset_meta.csv), got {list(columns)}")


def image_files(images: list, path: Path, skips: "Skips") -> dict[int, str]:
    """``{id: file_name}`` of the ``images`` list; entries without both are skipped.

    Raises:
        UserError: two entries share an id or a file name (their captions would go to the wrong picture), or a
            file name leads out of the images folder (an absolute path, or ``..``).
    """
    files: dict[int, str] = {}
    where: dict[int, int] = {}  # id -> position in images
    by_name: dict[str, int] = {}  # file_name -> position in images
    for position, entry in enumerate(images):
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), int) or not entry.get("file_name"):
            skips.add("image entries without id or file_name", entry)
            continue
        image_id, name = entry["id"], inside(str(entry["file_name"]))
        if name is None:
            raise UserError(
                f"{path}: images[{position}] has file_name {entry['file_name']!r}, outside data.images_dir; "
                "file names must be relative to data.images_dir"
            )
        if image_id in files:
            raise UserError(f"{path}: images[{position}] and images[{where[image_id]}] both have id {image_id}")
        if name in by_name:
            raise UserError(f"{path}: images[{position}] and images[{by_name[name]}] both have file_name {name!r}")
        files[image_id], where[image_id], by_name[name] = name, position, position
    return files


class Skips:
    """Counts of skipped items by reason, with a few examples each, reported in one warning."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.examples: dict[str, list[str]] = defaultdict(list)

    def add(self, reason: str, example: object) -> None:
        self.counts[reason] += 1
        if len(self.examples[reason]) < 3:
            self.examples[reason].append(str(example))

    def report(self, source: str) -> None:
        if self.counts:
            parts = [f"{n} {reason} (e.g. {', '.join(self.examples[reason])})" for reason, n in self.counts.items()]
            warn(f"{source}: skipped " + "; ".join(parts))


def read_references(captions_file: Path, skips: Skips) -> tuple[dict[int, str], dict[int, list[str]]]:
    """``{id: file_name}`` and ``{id: [reference captions]}`` of a COCO captions file; what is unusable to ``skips``.

    Raises:
        UserError: as :func:`read_captions_file` and :func:`image_files`.
    """
    images, annotations = read_captions_file(captions_file)
    files = image_files(images, captions_file, skips)
    references: dict[int, list[str]] = defaultdict(list)
    for ann in annotations:
        if not isinstance(ann, dict) or "image_id" not in ann or not isinstance(ann.get("caption"), str):
            skips.add("annotations without image_id or caption", ann)
        elif ann["image_id"] not in files:
            skips.add("captions of an image id not in 'images'", ann["image_id"])
        elif not tokenize(ann["caption"]):
            skips.add("captions empty or of punctuation only", f"image {ann['image_id']}: {ann['caption']!r}")
        else:
            references[ann["image_id"]].append(ann["caption"].strip())
    return files, references


def read_coco(
    images_dir: Path, captions_file: Path, subset_csv: str | None = None, max_images: int | None = None, seed: int = 0
) -> tuple[list[int], list[list[str]], list[Path]]:
    """The ids, reference captions and files of every usable image; what was skipped is one summary warning.

    Args:
        images_dir: folder of the image files (``file_name`` in the JSON is relative to it).
        captions_file: the COCO captions JSON.
        subset_csv: optionally, a CSV listing the images to use by ``id`` (or ``file_name``).
        max_images: optionally, this many images drawn at random (seeded by ``seed``).
        seed: seed of that draw.
    """
    if not images_dir.is_dir():
        raise UserError(f"data.images_dir: {images_dir} is not a folder")
    skips = Skips()
    files, references = read_references(captions_file, skips)
    ids = sorted(files)
    if subset_csv is not None:
        ids = subset(ids, files, subset_csv, captions_file, skips)
    kept = []
    for image_id in ids:
        if not references.get(image_id):
            skips.add("images without captions", files[image_id])
        elif not (images_dir / files[image_id]).is_file():
            skips.add(f"images whose file is missing under {images_dir}", files[image_id])
        else:
            kept.append(image_id)
    skips.report(str(captions_file))
    if max_images is not None and max_images < len(kept):
        pick = torch.randperm(len(kept), generator=torch.Generator().manual_seed(seed))[:max_images]
        kept = sorted(kept[i] for i in pick.tolist())
    return kept, [references[i] for i in kept], [images_dir / files[i] for i in kept]


def subset(ids: list[int], files: dict[int, str], subset_csv: str, captions_file: Path, skips: Skips) -> list[int]:
    """The ids of ``ids`` that ``subset_csv`` lists (by id or file name); rows it cannot find are skipped."""
    column, wanted = read_subset_csv(subset_csv)
    known = set(ids) if column == "id" else {name: i for i, name in files.items()}
    chosen = []
    for value in dict.fromkeys(wanted):  # unique, in order
        if value not in known:
            skips.add(f"subset_csv rows not in {captions_file.name}", value)
        else:
            chosen.append(value if column == "id" else known[value])
    return sorted(chosen)


class CocoCaptions(Dataset):
    """COCO-format captions as a plain ``Dataset`` of ``{"images", "references", "keys"}``, usable without Lightning.

    Arguments as for :func:`read_coco`; ``reader`` decodes the files (default: RGB at their own size). A file that
    cannot be read gives an ``Unreadable`` (see ``vlc.data.bad_images``). The references of a sample are a list, so
    batch with a collate function of your own (or ``CocoCaptionsDataModule``).
    """

    def __init__(
        self,
        images_dir: str | Path,
        captions_file: str | Path,
        subset_csv: str | None = None,
        max_images: int | None = None,
        seed: int = 0,
        reader: ImageReader | None = None,
    ) -> None:
        self.keys, self.references, self.files = read_coco(
            Path(images_dir), Path(captions_file), subset_csv, max_images, seed
        )
        self.reader = reader or ImageReader()

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> dict | Unreadable:
        image = read_or_unreadable(self.reader, self.files[i])
        if isinstance(image, Unreadable):
            return image
        return {"images": image, "references": self.references[i], "keys": self.keys[i]}
