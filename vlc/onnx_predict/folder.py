"""The images to predict as uint8 batches, read by vlc's rules; the files left out, each with its reason.

The same files, in the same order and with the same reasons, as ``vlc predict`` (``vlc.data.datasets.predict_folder``):
every file under the folder (recursively, sorted) that is named like an image and passes the header check is
decoded by ``vlc.image_files.ImageDecoder`` and resized to the model's side as ``vlc predict``'s
``data.image_size`` resizes (:func:`vlc.image_files.resize_array`); the others are listed with their reason.
"""

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vlc.errors import UserError, warn
from vlc.image_files import BadImage, ImageDecoder, resize_array, scan_folder


class Folder:
    """The images under ``folder`` (or the one image file ``folder``), and the files that could not be read.

    Args:
        folder: a folder of images, or one image file.
        decoder: the reader (its ``max_pixels``).

    Raises:
        UserError: ``folder`` does not exist.
    """

    def __init__(self, folder: str | Path, decoder: ImageDecoder) -> None:
        path = Path(folder)
        if path.is_file():
            entries = [(path, None)]
        elif path.is_dir():
            entries = scan_folder(path)
        else:
            raise UserError(f"{folder}: no such folder (expected a folder of images)")
        self.decoder, self.total = decoder, len(entries)
        self.skipped: list[tuple[str, str]] = []
        self.files: list[Path] = []
        for file, reason in entries:
            reason = reason or decoder.check(file)
            if reason is None:
                self.files.append(file)
            else:
                self.skip(file, reason)

    def skip(self, path: str | Path, reason: str) -> None:
        """Leave ``path`` out, naming it and the reason on stderr."""
        self.skipped.append((str(path), reason))
        warn(f"skipping {path}: {reason}")

    def batches(self, size: int, batch_size: int) -> Iterator[tuple[list[str], np.ndarray]]:
        """``(files, images)`` batches: images uint8 ``(B, 3, size, size)``; an undecodable file is skipped."""
        files, images = [], []
        for path in self.files:
            try:
                image = resize_array(self.decoder(path), size)  # (size, size, 3)
            except BadImage as bad:
                self.skip(bad.path, bad.reason)
                continue
            files.append(str(path))
            images.append(image.transpose(2, 0, 1))  # (3, size, size)
            if len(files) == batch_size:
                yield files, np.stack(images)
                files, images = [], []
        if files:
            yield files, np.stack(images)
