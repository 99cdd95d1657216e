"""A prediction file as ``vlc predict`` writes it (CSV or JSON), read back row by row for the report."""

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from vlc.csv_cells import uncell
from vlc.errors import UserError
from vlc.text_files import read_text

OOD = "ood_score"
"""The column of ``vlc predict``'s out-of-distribution score (1: farther from the validation images than 99 in 100)."""

KINDS = {"classification": ("label", "probability", "top_k"), "captioning": ("caption", "score")}
"""The columns each task's ``predict_step`` writes, besides ``file`` (and ``overlay`` with ``--writer.explain``)."""


@dataclass
class Prediction:
    """One row of a prediction file.

    Attributes:
        file: the image, as the prediction file names it (a path, or a split's image id).
        row: every column of the row, lists (``top_k``, ``alternatives``) parsed.
        overlay: the row's overlay image (``<output stem>.explain/...``), resolved from the prediction file's folder.
    """

    file: str
    row: dict
    overlay: Path | None = None


@dataclass
class Predictions:
    """The rows of a prediction file, and which task wrote it (``classification`` or ``captioning``)."""

    path: Path
    kind: str
    items: list[Prediction]

    @property
    def unlike(self) -> int | None:
        """How many images score above 1 in the ``ood_score`` column (None without the column)."""
        scores = [item.row.get(OOD) for item in self.items]
        if all(score in (None, "") for score in scores):
            return None
        return sum(1 for score in scores if score not in (None, "") and score > 1)

    def image_path(self, item: Prediction) -> Path | None:
        """The image file of ``item``: its ``file`` as written, else relative to the prediction file's folder."""
        file = Path(item.file)
        for candidate in (file, self.path.parent / file):
            if candidate.is_file():
                return candidate
        return None


def read_predictions(path: str | Path) -> Predictions:
    """The rows of a ``vlc predict`` file (CSV or JSON), its task told by its columns.

    Raises:
        UserError: the file is missing, unreadable, has no rows, is not a prediction file of either task, or names an
            overlay image that does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist; expected a prediction file of vlc predict (.csv or .json)")
    if path.suffix.lower() not in (".csv", ".json"):
        raise UserError(f"{path}: expected a prediction file of vlc predict ending in .csv or .json")
    rows = _json_rows(path) if path.suffix.lower() == ".json" else _csv_rows(path)
    if not rows:
        raise UserError(f"{path}: no predictions in it (vlc predict found no readable image?)")
    kind = _kind(path, rows[0])
    items = [Prediction(str(row["file"]), row, _overlay(path, row, n)) for n, row in enumerate(rows, 1)]
    return Predictions(path, kind, items)


def _json_rows(path: Path) -> list[dict]:
    try:
        rows = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise UserError(f"{path}, line {err.lineno}, column {err.colno}: not valid JSON ({err.msg})") from None
    if not isinstance(rows, list) or not all(isinstance(row, dict) and "file" in row for row in rows):
        raise UserError(f"{path}: expected a list of rows with a 'file' each, as vlc predict writes it")
    return rows


def _csv_rows(path: Path) -> list[dict]:
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    if "file" not in (reader.fieldnames or []):
        raise UserError(f"{path}: expected a 'file' column, as vlc predict writes it; got {reader.fieldnames}")
    rows = []
    for row in reader:
        parsed = {}
        for key, value in row.items():
            value = uncell(value or "")
            parsed[key] = json.loads(value) if key in ("top_k", "alternatives") and value else value
        for key in ("probability", "score", "class_index", "ood_score"):
            if parsed.get(key) not in (None, ""):
                parsed[key] = _number(path, reader.line_num, key, parsed[key])
        rows.append(parsed)
    return rows


def _number(path: Path, line: int, key: str, text: str) -> float | int:
    try:
        return int(text) if key == "class_index" else float(text)
    except ValueError:
        raise UserError(f"{path}, line {line}: column {key} holds {text!r}, expected a number") from None


def _kind(path: Path, row: dict) -> str:
    for kind, columns in KINDS.items():
        if all(column in row for column in columns):
            return kind
    expected = "; ".join(f"{kind}: {', '.join(columns)}" for kind, columns in KINDS.items())
    raise UserError(f"{path}: not a prediction file of vlc predict; its columns {list(row)} lack those of {expected}")


def _overlay(path: Path, row: dict, n: int) -> Path | None:
    """The overlay named by ``row`` (relative to the prediction file's folder), which must exist."""
    name = row.get("overlay") or ""
    if not name:
        return None
    overlay = path.parent / name
    if not overlay.is_file():
        raise UserError(
            f"{path}: row {n} ({row['file']}) names the overlay {name!r}, but {overlay} does not exist "
            "(overlays are relative to the prediction file's folder)"
        )
    return overlay
