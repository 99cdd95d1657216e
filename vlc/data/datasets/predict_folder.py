"""Prediction input for any task: every image under a folder, recursively; every other file is listed as skipped."""

from pathlib import Path

from vlc.data.bad_images import BadImages, check_files
from vlc.data.datasets.images import FileImages
from vlc.errors import UserError
from vlc.images import ImageReader, scan_folder


def folder_images(folder: str | Path, reader: ImageReader, bad: BadImages) -> list[Path]:
    """The files under ``folder`` (recursively) that pass the reader's header check; the others go to ``bad``.

    None may pass: the prediction writer then lists them all and stops.

    Raises:
        UserError: ``folder`` is not a folder.
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
    return files


def folder_dataset(folder: str | Path | None, reader: ImageReader) -> tuple[FileImages, BadImages]:
    """Every readable image under ``folder`` as a dataset of ``{"images", "files"}``, and the skipped files' record.

    The one way every data module predicts a folder; the prediction writer lists the record beside its output.

    Raises:
        UserError: no folder was given, or ``folder`` is not a folder.
    """
    if folder is None:
        raise UserError("vlc predict needs a folder of images: set data.predict_dir")
    bad = BadImages("predict")
    files = folder_images(folder, reader, bad)
    return FileImages(files, [str(f) for f in files], reader, field="files"), bad
