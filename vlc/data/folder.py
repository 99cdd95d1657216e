"""Prediction input for any task: every image under a folder, recursively."""

import lightning as L
from jsonargparse.typing import NonNegativeInt, PositiveInt
from torch.utils.data import DataLoader

from vlc.data.datasets import FileImages
from vlc.data.image_io import folder_images


class ImageFolderDataModule(L.LightningDataModule):
    """Images under ``predict_dir`` (jpg, jpeg, png, bmp, webp in any case), resized to ``image_size``.

    Files that are not images or cannot be decoded are skipped, each with a warning, and counted.

    Args:
        predict_dir: the folder to predict.
        image_size: side length every image is resized to (use the size the model was trained at).
        batch_size: images per batch.
        num_workers: DataLoader worker processes.
    """

    def __init__(
        self,
        predict_dir: str,
        image_size: PositiveInt = 64,
        batch_size: PositiveInt = 64,
        num_workers: NonNegativeInt = 0,
    ) -> None:
        super().__init__()
        self.predict_dir, self.image_size = predict_dir, image_size
        self.batch_size, self.num_workers = batch_size, num_workers

    def setup(self, stage: str) -> None:
        files = folder_images(self.predict_dir)
        self.dataset = FileImages(files, [str(f) for f in files], self.image_size)

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=self.batch_size, num_workers=self.num_workers)
