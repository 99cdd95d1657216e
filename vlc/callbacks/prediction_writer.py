"""Writes the rows returned by ``predict_step`` to one CSV or JSON file (one complete file under DDP too).

The files that could not be read are listed, with the reason, in ``<output stem>.skipped.csv`` beside it.
"""

import csv
import json
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch.distributed as dist
from lightning.pytorch.callbacks import BasePredictionWriter

from vlc.errors import UserError


def _cell(value: Any) -> Any:
    """Flatten a nested value for a CSV cell: ``[["lion", 0.9], ["tiger", 0.1]]`` -> ``lion:0.9;tiger:0.1``."""
    if isinstance(value, list):
        return ";".join(":".join(map(str, v)) if isinstance(v, list) else str(v) for v in value)
    return value


class PredictionWriter(BasePredictionWriter):
    """Collects every prediction row and writes them, sorted by file, to ``output`` at the end.

    Every file under the folder either gets a row or a line in ``<output stem>.skipped.csv`` (columns ``file``,
    ``reason``: not an image, undecodable, too large, a broken link, ...), which is written on every run.

    Under DDP each process predicts part of the data (and the sampler may repeat a few images to even the
    parts out): the rows are gathered on rank 0, de-duplicated by file, and written once.

    Args:
        output: the prediction file; ``.csv`` or ``.json`` by its suffix.
        submission: optionally also write a submission file ``Id,Category`` (file name, predicted class
            index), the format of the TinyImageNet30 coursework.
    """

    def __init__(self, output: str = "predictions.csv", submission: str | None = None) -> None:
        super().__init__(write_interval="batch")
        if Path(output).suffix.lower() not in (".csv", ".json"):
            raise UserError(f"writer.output must end in .csv or .json, got {output!r}")
        self.output, self.submission = Path(output), submission
        self.rows: list[dict] = []

    def on_predict_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.rows = []

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):
        self.rows.extend(prediction)

    @property
    def skipped_file(self) -> Path:
        """Where the files that could not be read are listed: ``predictions.csv`` -> ``predictions.skipped.csv``."""
        return self.output.with_name(self.output.stem + ".skipped.csv")

    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        bad = getattr(trainer.datamodule, "bad_images", None)
        rows, skipped = _gather(trainer, self.rows), _gather(trainer, [vars(u) for u in bad.found] if bad else [])
        if not trainer.is_global_zero:
            return
        unique = {row["file"]: row for row in rows}
        rows = [unique[f] for f in sorted(unique)]
        skipped = sorted({row["path"]: row for row in skipped}.values(), key=lambda row: row["path"])
        _write(self.output, lambda f: self._predictions(f, rows), "writer.output")
        _write(self.skipped_file, lambda f: _skipped(f, skipped), "writer.output")
        print(f"wrote {len(rows)} predictions to {self.output}")
        print(f"skipped {len(skipped)} files that could not be read, listed in {self.skipped_file}")
        if self.submission:
            if "class_index" not in (rows[0] if rows else {"class_index": 0}):
                raise UserError("writer.submission: a submission file needs a classifier's predictions")
            _write(Path(self.submission), lambda f: self._submission(f, rows), "writer.submission")
            print(f"wrote the submission ({len(rows)} rows) to {self.submission}")

    def _predictions(self, f, rows: list[dict]) -> None:
        if self.output.suffix.lower() == ".json":
            json.dump(rows, f, indent=1)
        else:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["file"])
            writer.writeheader()
            writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)

    @staticmethod
    def _submission(f, rows: list[dict]) -> None:
        writer = csv.writer(f)
        writer.writerow(["Id", "Category"])
        writer.writerows(zip(submission_ids([row["file"] for row in rows]), (row["class_index"] for row in rows)))


def submission_ids(files: list[str]) -> list[str]:
    """Unique ids for ``files``: their paths relative to the folder that holds them all (``/`` separated).

    For a flat folder that is the file name (the coursework's ``Id``); files of sub-folders keep their
    sub-folder (``a/img.jpg``, ``b/img.jpg``), so that two files of the same name never share an id.
    """
    if not files:
        return []
    root = Path(os.path.commonpath([str(Path(f).parent) for f in files]))
    return [Path(f).relative_to(root).as_posix() for f in files]


def _gather(trainer: L.Trainer, rows: list[dict]) -> list[dict]:
    """Every process's ``rows``, on every process (under DDP)."""
    if trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
        gathered: list[list[dict]] = [[] for _ in range(trainer.world_size)]
        dist.all_gather_object(gathered, rows)
        return [row for part in gathered for row in part]
    return rows


def _skipped(f, skipped: list[dict]) -> None:
    writer = csv.writer(f)
    writer.writerow(["file", "reason"])
    writer.writerows([row["path"], row["reason"]] for row in skipped)


def _write(path: Path, write, key: str) -> None:
    """``write(file)`` into a temporary file beside ``path``, then rename it: a complete file or none.

    Raises:
        UserError: the file cannot be written (a full disk, a folder that is gone), naming ``key`` and the reason.
    """
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("w", newline="") as f:
            write(f)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise UserError(f"{key}: cannot write {path} ({err.strerror or err})") from None
