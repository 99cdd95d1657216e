"""Prediction input for any task: every image under a folder, recursively; every other file is listed as skipped."""

from pathlib import Path

import lightning as L
from jsonargparse.typing import NonNegativeInt, PositiveInt
from torch.utils.data import DataLoader

from vlc.data.bad_images import BadImages, check_files
from vlc.data.datasets import FileImages
from vlc.data.image_io import IMAGE_SUFFIXES, MAX_PIXELS, ImageReader, scan_folder
from vlc.data.loading import make_loader
from vlc.errors import UserError


def folder_images(folder: str | Path, reader: ImageReader, bad: BadImages) -> list[Path]:
    """The files under ``folder`` (recursively) that pass the reader's header check; the others go to ``bad``.

    Raises:
        UserError: ``folder`` is not a folder, or holds no readable image.
    """
    if not Path(folder).is_dir():
        raise UserError(f"{folder}: not a folder (data.predict_dir must be a folder of images)")
    entries = scan_folder(folder)
    for path, reason in entries:
        if reason is not None:
            bad.add(path, reason)
    candidates = [path for path, reason in entries if reason is None]
    files = [candidates[i] for i in check_files(candidates, reader, bad)]
    bad.settle(f"files under {folder}", len(entries))
    if not files:
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise UserError(f"{folder}: no readable images (expected {suffixes} files; see the warnings above)")
    return files


def folder_dataset(folder: str | Path | None, reader: ImageReader) -> tuple[FileImages, BadImages]:
    """Every readable image under ``folder`` as a dataset of ``(image, path)``, and the record of the skipped files.

    The one way every data module predicts a folder; the prediction writer lists the record beside its output.

    Raises:
        UserError: no folder was given, ``folder`` is not a folder, or it holds no readable image.
    """
    if folder is None:
        raise UserError("vlc predict needs a folder of images: set data.predict_dir")
    bad = BadImages("predict")
    files = folder_images(folder, reader, bad)
    return FileImages(files, [str(f) for f in files], reader), bad


class ImageFolderDataModule(L.LightningDataModule):
    """Images under ``predict_dir``, resized to ``image_size``, for ``vlc predict``.

    Files that are not images, or cannot be read, are skipped with a warning each; the prediction writer lists
    them, with the reason, beside the predictions.

    Args:
        predict_dir: the folder to predict.
        image_size: side length every image is resized to (use the size the model was trained at).
        batch_size: images per batch.
        num_workers: DataLoader worker processes.
        max_image_pixels: images with more pixels than this are skipped (a guard against decompression bombs).
    """

    def __init__(
        self,
        predict_dir: str,
        image_size: PositiveInt = 64,
        batch_size: PositiveInt = 64,
        num_workers: NonNegativeInt = 0,
        max_image_pixels: PositiveInt = MAX_PIXELS,
    ) -> None:
        super().__init__()
        self.predict_dir, self.batch_size, self.num_workers = predict_dir, batch_size, num_workers
        self.reader = ImageReader(image_size, max_image_pixels)
        self.bad_images = BadImages("predict")

    def setup(self, stage: str) -> None:
        self.dataset, self.bad_images = folder_dataset(self.predict_dir, self.reader)

    def predict_dataloader(self) -> DataLoader:
        return make_loader(self.dataset, self.batch_size, self.num_workers)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        return self.bad_images.take(batch, self.trainer)
