"""The TinyImageNet30 data module: the coursework layout's training set split for validation, its labelled test set."""

from pathlib import Path

from vlc.data.datasets.images import Samples
from vlc.data.datasets.tinyimagenet30 import read_class_file, read_test_set, read_train_set, set_folder
from vlc.data.modules.classification import ClassificationDataModule
from vlc.errors import UserError


class TinyImageNet30DataModule(ClassificationDataModule):
    """TinyImageNet30 (30 classes, 64x64) read from the coursework layout (``TinyImageNet30`` for Lightning).

    Args:
        root: the dataset folder holding ``class.txt``, ``train_set/`` and ``test_set/``.
        test_labels: a CSV with columns ``Id,Category`` (file name, class index or name), one row for each image
            of ``test_set``, read and checked at once (:func:`read_test_set`); with it ``vlc test`` reports test
            accuracy. Without it, ``vlc predict`` predicts ``test_set``.
        **kwargs: the shared options of ``ClassificationDataModule`` (batch size, augmentation, cache, ...).
    """

    def __init__(self, root: str, test_labels: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.root, self.test_labels = Path(root), test_labels
        if self.shards is not None:  # the images, labels and names are the shards': root is not read
            self._class_names, self._test = [], None
            return
        if not self.root.is_dir():
            raise UserError(f"data.root: {self.root} is not a folder; expected the extracted TinyImageNet30")
        self._class_names = read_class_file(self.root / "class.txt")
        # read now, before a run logs anything: a labels file that cannot be scored leaves the run's logs as they were
        self._test = None if test_labels is None else read_test_set(self.root, test_labels, self._class_names)

    @property
    def source_class_names(self) -> list[str]:
        return list(self._class_names)

    def labelled(self, split: str) -> Samples | None:
        if split == "train":
            return read_train_set(self.root, self._class_names)
        return self._test

    def test_options(self) -> list[str]:
        """``--data.test_labels`` when it was not given: the dataset folder's ``test_labels.csv`` if it has one."""
        if self.test_labels is not None:
            return []
        found = self.root / "test_labels.csv"
        return ["--data.test_labels", str(found) if found.is_file() else "TEST_LABELS.csv"]

    def predict_folder(self) -> str | Path:
        """``predict_dir`` when given, else ``test_set/``."""
        return self.predict_dir if self.predict_dir is not None else set_folder(self.root / "test_set")
