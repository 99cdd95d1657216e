"""Writes the rows returned by ``predict_step`` to one CSV or JSON file (one complete file under DDP too)."""

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

    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        rows = self.rows
        if trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
            gathered: list[list[dict]] = [[] for _ in range(trainer.world_size)]
            dist.all_gather_object(gathered, rows)
            rows = [row for part in gathered for row in part]
        if trainer.is_global_zero:
            unique = {row["file"]: row for row in rows}
            rows = [unique[f] for f in sorted(unique)]
            self._write(rows)
            if self.submission:
                self._write_submission(rows)
            print(f"wrote {len(rows)} predictions to {self.output}")

    def _write(self, rows: list[dict]) -> None:
        self.output.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.output.with_suffix(self.output.suffix + ".tmp")
        with tmp.open("w", newline="") as f:
            if self.output.suffix.lower() == ".json":
                json.dump(rows, f, indent=1)
            else:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["file"])
                writer.writeheader()
                writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
        os.replace(tmp, self.output)  # a complete file or none: never a half-written one

    def _write_submission(self, rows: list[dict]) -> None:
        path = Path(self.submission)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["Id", "Category"])
            writer.writerows([Path(row["file"]).name, row["class_index"]] for row in rows)
        print(f"wrote the submission ({len(rows)} rows) to {path}")
