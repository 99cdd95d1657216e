"""Writes the rows returned by ``predict_step`` to one CSV or JSON file (one complete file under DDP too).

The files that could not be read are listed, with the reason, in ``<output stem>.skipped.csv`` beside it. With
``explain``, each image's explanation (the task's ``explain``: Grad-CAM, attention) is a PNG under
``<output stem>.explain/``, named in the column ``overlay``.
"""

from pathlib import Path

import lightning as L
import torch.distributed as dist
from lightning.pytorch.callbacks import BasePredictionWriter

from vlc.errors import UserError, warn
from vlc.explain.ood import ood_note
from vlc.images import IMAGE_SUFFIXES
from vlc.prediction_files import skipped_file, write_predictions, write_skipped, write_submission


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
        explain: also write one PNG per image that shows what the prediction rests on (a classifier: the image
            and its Grad-CAM map of the predicted class; an attention captioner: a strip of one attention map per
            word) under ``<output stem>.explain/``, mirroring the images' paths under the predicted folder
            (``sub/img.jpg`` -> ``sub/img.jpg.png``); the column ``overlay`` holds its path relative to the
            prediction file's folder (empty where there is none).
    """

    def __init__(self, output: str = "predictions.csv", submission: str | None = None, explain: bool = False) -> None:
        super().__init__(write_interval="batch")
        if Path(output).suffix.lower() not in (".csv", ".json"):
            raise UserError(f"writer.output must end in .csv or .json, got {output!r}")
        self.output, self.submission, self.explain = Path(output), submission, explain
        self.explains = explain  # whether this model has explanations (see setup)
        self.rows: list[dict] = []
        self.report: list[str] = []  # what was written, printed at teardown
        self.note: str | None = None  # the images look unlike the validation images (vlc.explain.ood)

    def on_predict_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.rows = []

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):
        if self.explain:
            self._explain(trainer, pl_module, batch, prediction)
        self.rows.extend(prediction)

    @property
    def explain_folder(self) -> Path:
        """Where the explanations go: ``predictions.csv`` -> ``predictions.explain/``."""
        return self.output.with_name(self.output.stem + ".explain")

    def _explain(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: dict | None, rows: list[dict]) -> None:
        """Write the explanation of every row's image, and name it in the row's ``overlay``."""
        pictures = pl_module.explain(batch["images"], rows) if self.explains and rows else [None] * len(rows)
        root = _root(getattr(trainer.datamodule, "predict_folder", lambda: None)())
        for row, picture in zip(rows, pictures):
            row["overlay"] = ""
            if picture is None:
                continue
            relative = Path(self.explain_folder.name) / overlay_name(row["file"], root)
            path = self.output.parent / relative
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                picture.save(path)
            except OSError as err:
                raise UserError(f"writer.explain: cannot write {path} ({err.strerror or err})") from None
            row["overlay"] = relative.as_posix()

    @property
    def skipped_file(self) -> Path:
        """Where the files that could not be read are listed: ``predictions.csv`` -> ``predictions.skipped.csv``."""
        return skipped_file(self.output)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Stop before predicting a folder without a readable image, once its skip list is written.

        Raises:
            UserError: no file under the folder can be read (each is listed in :attr:`skipped_file`).
        """
        super().setup(trainer, pl_module, stage)
        if self.explain:
            reason = pl_module.cannot_explain() if hasattr(pl_module, "explain") else "it has no explain()"
            if reason and trainer.is_global_zero:
                warn(f"writer.explain: no overlays for this model: {reason} (the column overlay stays empty)")
            self.explains = reason is None
        datamodule = trainer.datamodule
        dataset = getattr(datamodule, "datasets", {}).get("predict")
        if stage != "predict" or dataset is None or len(dataset):
            return
        bad = getattr(datamodule, "bad_images", None)  # every process checked every file: no gathering
        self._write_outputs(trainer, [], [vars(u) for u in bad.found] if bad else [], submission=False)
        self.teardown(trainer, pl_module, stage)
        folder = datamodule.predict_folder() if hasattr(datamodule, "predict_folder") else "data.predict_dir"
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise UserError(f"{folder}: no readable images (expected {suffixes} files; see {self.skipped_file})")

    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        bad = getattr(trainer.datamodule, "bad_images", None)
        rows, skipped = _gather(trainer, self.rows), _gather(trainer, [vars(u) for u in bad.found] if bad else [])
        self._write_outputs(trainer, rows, skipped, submission=bool(self.submission))

    def _write_outputs(self, trainer: L.Trainer, rows: list[dict], skipped: list[dict], submission: bool) -> None:
        """On rank 0: the predictions sorted by file, the skip list, and optionally the submission."""
        if not trainer.is_global_zero:
            return
        unique = {row["file"]: row for row in rows}
        rows = [unique[f] for f in sorted(unique)]
        skipped = sorted({row["path"]: row for row in skipped}.values(), key=lambda row: row["path"])
        write_predictions(self.output, rows, "writer.output")
        write_skipped(self.output, [(row["path"], row["reason"]) for row in skipped], "writer.output")
        self.report = describe(rows[0], self.output.parent) if len(rows) == 1 else []  # one image: in the terminal
        self.report.append(f"wrote {len(rows)} predictions to {self.output}")
        self.note = ood_note([row["ood_score"] for row in rows if "ood_score" in row])
        self.report.append(f"skipped {len(skipped)} files that could not be read, listed in {self.skipped_file}")
        if submission:
            write_submission(self.submission, rows, "writer.submission")
            self.report.append(f"wrote the submission ({len(rows)} rows) to {self.submission}")

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Say what was written, once the progress bar has finished its line."""
        if self.report:
            print("\n".join(self.report), flush=True)
        if self.note:
            warn(self.note)
        self.report, self.note = [], None


def describe(row: dict, folder: Path) -> list[str]:
    """Terminal lines of one prediction row: the file, its top-k classes or its caption(s), and its overlay.

    ``folder``: the prediction file's, which the overlay's path is relative to.
    """
    lines = [f"{row['file']}:"]
    if "top_k" in row:
        width = max(len(str(name)) for name, _ in row["top_k"])
        lines += [f"  {name:<{width}}  {p:.3f}" for name, p in row["top_k"]]
    elif "caption" in row:
        captions = row.get("alternatives") or [[row["caption"], row["score"]]]
        lines += [f"  {caption}  (score {score:.3f})" for caption, score in captions]
    if "ood_score" in row:
        lines.append(f"  ood_score: {row['ood_score']:.2f} (1: farther from the validation images than 99 in 100)")
    if row.get("overlay"):
        lines.append(f"  explanation: {folder / row['overlay']}")
    return lines


def overlay_name(file: str, root: Path | None) -> Path:
    """The overlay's path under the explanation folder: the image's path under ``root`` (or its name) + ``.png``.

    The image's suffix is kept (``img.jpg.png``), so that ``img.jpg`` and ``img.png`` never share an overlay.
    """
    path = Path(file)
    if root is not None and path.is_relative_to(root):
        path = path.relative_to(root)
    elif path.is_absolute() or ".." in path.parts:
        path = Path(path.name)
    return path.with_name(path.name + ".png")


def _root(predicted: str | Path | None) -> Path | None:
    """The folder the predicted files' paths are taken relative to: the folder predicted, or a file's folder."""
    if predicted is None:
        return None
    predicted = Path(predicted)
    return predicted.parent if predicted.is_file() else predicted


def _gather(trainer: L.Trainer, rows: list[dict]) -> list[dict]:
    """Every process's ``rows``, on every process (under DDP)."""
    if trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
        gathered: list[list[dict]] = [[] for _ in range(trainer.world_size)]
        dist.all_gather_object(gathered, rows)
        return [row for part in gathered for row in part]
    return rows
