"""The files a prediction writes, without torch: the predictions (CSV or JSON), the skipped files, the submission.

Written the same way by ``vlc predict``'s ``PredictionWriter`` (``vlc/callbacks/prediction_writer.py``) and the
torch-free ONNX predictor (``python -m vlc.onnx_predict``): one row per image sorted by file, lists
(``top_k``, ``alternatives``) as JSON in CSV cells, ``<output stem>.skipped.csv`` (``file``, ``reason``) written on
every run, and the TinyImageNet30 coursework's submission ``Id,Category``. Every file is written whole or not at all.
"""

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from vlc.csv_cells import FORMULA_STARTS, write_rows
from vlc.errors import UserError, warn


def skipped_file(output: str | Path) -> Path:
    """Where the files that could not be read are listed: ``predictions.csv`` -> ``predictions.skipped.csv``."""
    output = Path(output)
    return output.with_name(output.stem + ".skipped.csv")


def write_predictions(output: str | Path, rows: list[dict], key: str = "--output") -> None:
    """The rows, sorted by file, as CSV or JSON by ``output``'s suffix (``key`` names the option in errors)."""
    output = Path(output)
    rows = sorted(rows, key=lambda row: row["file"])
    if output.suffix.lower() == ".json":
        write_file(output, lambda f: json.dump(rows, f, indent=1) or 0, key)
        return
    keys = list(rows[0]) if rows else ["file"]
    write_file(output, lambda f: write_rows(f, keys, ([_cell(row.get(k)) for k in keys] for row in rows)), key)


def write_skipped(output: str | Path, skipped: list[tuple[str, str]], key: str = "--output") -> Path:
    """The ``(file, reason)`` pairs, sorted by file, into :func:`skipped_file` of ``output``; its path."""
    path = skipped_file(output)
    write_file(path, lambda f: write_rows(f, ["file", "reason"], sorted(skipped)), key)
    return path


def write_submission(path: str | Path, rows: list[dict], key: str = "--submission") -> None:
    """The submission file ``Id,Category`` (file id, predicted class index) of a classifier's rows.

    Raises:
        UserError: the rows are not a classifier's (no ``class_index``).
    """
    rows = sorted(rows, key=lambda row: row["file"])
    if rows and "class_index" not in rows[0]:
        raise UserError(f"{key}: a submission file needs a classifier's predictions")
    ids = submission_ids([row["file"] for row in rows])
    write_file(Path(path), lambda f: write_rows(f, ["Id", "Category"], zip(ids, (r["class_index"] for r in rows))), key)


def submission_ids(files: list[str]) -> list[str]:
    """Unique ids for ``files``: their paths relative to the folder that holds them all (``/`` separated).

    For a flat folder that is the file name (the coursework's ``Id``); files of sub-folders keep their
    sub-folder (``a/img.jpg``, ``b/img.jpg``), so that two files of the same name never share an id.
    """
    if not files:
        return []
    root = Path(os.path.commonpath([str(Path(f).parent) for f in files]))
    return [Path(f).relative_to(root).as_posix() for f in files]


def _cell(value: Any) -> Any:
    """A CSV cell: a list (``top_k``, ``alternatives``) as JSON, which parses back whatever the class names hold."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (list, dict)) else value


def write_file(path: Path, write: Callable[[IO[str]], int], key: str) -> None:
    """``write(file)`` into a temporary file beside ``path``, then rename it: a complete file or none.

    ``write`` returns how many CSV cells it wrote with a leading ``'`` (they would run as spreadsheet formulas): a
    warning says so, as a program reading the file must strip it.

    Raises:
        UserError: the file cannot be written (a full disk, a folder that is gone), naming ``key`` and the reason.
    """
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("w", newline="") as f:
            changed = write(f)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise UserError(f"{key}: cannot write {path} ({err.strerror or err})") from None
    if changed:
        starts = " ".join(repr(c)[1:-1] for c in FORMULA_STARTS)
        warn(f"{path}: {changed} cells start with one of {starts} (a spreadsheet formula): written with a leading '")
