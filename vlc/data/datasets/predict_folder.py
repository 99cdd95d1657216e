"""Prediction input for any task: one image file, or every image under a folder (others are listed as skipped)."""

from pathlib import Path

from vlc.data.bad_images import BadImages, check_files
from vlc.data.datasets.images import FileImages
from vlc.errors import UserError
from vlc.images import BadImage, ImageReader, scan_folder


def folder_images(folder: str | Path, reader: ImageReader, bad: BadImages) -> list[Path]:
    """The files under ``folder`` (recursively) that pass the reader's header check; the others go to ``bad``.

    None may pass: the prediction writer then lists them all and stops. ``folder`` may be one image file: it is
    decoded here, so that one that cannot be read stops at once with the reason.

    Raises:
        UserError: ``folder`` is neither a folder nor a file, or is a file that cannot be read as an image.
    """
    if Path(folder).is_file():
        return [one_image(Path(folder), reader)]
    if not Path(folder).is_dir():
        raise UserError(f"{folder}: no such file or folder (data.predict_dir must be an image file or a folder)")
    entries = scan_folder(folder)
    for path, reason in entries:
        if reason is not None:
            bad.add(path, reason)
    candidates = [path for path, reason in entries if reason is None]
    files = [candidates[i] for i in check_files(candidates, reader, bad)]
    bad.settle(f"files under {folder}", len(entries))
    return files


def one_image(path: Path, reader: ImageReader) -> Path:
    """``path``, once it is decoded as an image (whatever its name).

    Raises:
        UserError: it cannot be read, with the reason.
    """
    try:
        reader(path)
    except BadImage as bad:
        raise UserError(f"data.predict_dir: {path}: {bad.reason}") from None
    return path


def folder_dataset(folder: str | Path | None, reader: ImageReader) -> tuple[FileImages, BadImages]:
    """Every readable image under ``folder`` as a dataset of ``{"images", "files"}``, and the skipped files' record.

    ``folder`` may be one image file. The one way every data module predicts a folder; the prediction writer lists
    the record beside its output.

    Raises:
        UserError: no folder was given, ``folder`` is neither a folder nor a file, or an unreadable file.
    """
    if folder is None:
        raise UserError("vlc predict needs an image or a folder of images: set data.predict_dir")
    bad = BadImages("predict")
    files = folder_images(folder, reader, bad)
    return FileImages(files, [str(f) for f in files], reader, field="files"), bad
