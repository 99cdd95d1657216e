"""The CIFAR-10 data module: either layout of ``vlc.data.datasets.cifar10``, downloaded on request."""

from pathlib import Path

from vlc.data.datasets.cifar10 import (
    ARCHIVE_MD5,
    BATCHES,
    CIFAR10_CLASSES,
    LAYOUTS,
    URL,
    layout,
    read_class_names,
    read_split,
)
from vlc.data.datasets.images import Samples
from vlc.data.modules.classification import ClassificationDataModule
from vlc.errors import UserError


class Cifar10DataModule(ClassificationDataModule):
    """CIFAR-10 (10 classes, 32x32), read from ``root`` in either of two layouts (``Cifar10`` for Lightning).

    - torchvision's native format ``root/cifar-10-batches-py/`` (``data_batch_1..5``, ``test_batch``,
      ``batches.meta``), read from the pickles directly (no checksum test, so any file in that format works);
      with ``download: true`` it is fetched when missing and the machine is online.
    - image folders ``root/train/<class>/*`` and ``root/test/<class>/*`` (labels are the folder names).

    The validation split is drawn from ``train`` (``val_fraction``, seeded); ``test`` is the official test set.
    Set ``image_size: 64`` to upscale to the input size of a network trained on TinyImageNet30; the standard
    CIFAR augmentation is ``augment: crop_flip`` (pad by 1/8 of the side, random crop, horizontal flip).

    Args:
        root: the dataset folder.
        download: fetch the pickled format into ``root`` when no layout is there (needs internet).
        **kwargs: the shared options of ``ClassificationDataModule`` (batch size, image size, augmentation, ...).
    """

    def __init__(self, root: str, download: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.root, self.download = Path(root), download
        if self.shards is not None:  # the images, labels and names are the shards': root is not read
            self._class_names, self.download = [], False
            return
        if not self.root.is_dir() and not download:
            raise UserError(f"data.root: {self.root} is not a folder; expected CIFAR-10 as {LAYOUTS}")
        if layout(self.root) is None and download:
            self._class_names = list(CIFAR10_CLASSES)  # what batches.meta of the download holds; see prepare_data
        else:
            self._class_names = read_class_names(self.root)

    @property
    def source_class_names(self) -> list[str]:
        return list(self._class_names)

    def prepare_data(self) -> None:
        if layout(self.root) is not None or not self.download:
            return
        from torchvision.datasets.utils import download_and_extract_archive

        try:
            download_and_extract_archive(URL, str(self.root), filename=f"{BATCHES}.tar.gz", md5=ARCHIVE_MD5)
        except Exception as err:  # URLError, HTTPError, socket errors, a bad checksum
            raise UserError(
                f"could not download CIFAR-10 from {URL} ({type(err).__name__}: {err}); this machine looks offline: "
                f"put CIFAR-10 in {self.root} as {LAYOUTS}"
            ) from None

    def labelled(self, split: str) -> Samples | None:
        return read_split(self.root, split, self._class_names, self.image_size)
