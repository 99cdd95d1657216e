"""``vlc predict`` on any folder of images, with no dataset behind the model (configs/predict/*.yaml)."""

from jsonargparse.typing import NonNegativeInt, PositiveInt

from vlc.data.bad_images import BadImages
from vlc.data.modules.base import ImageDataModule
from vlc.errors import UserError
from vlc.images import MAX_PIXELS


class ImageFolderDataModule(ImageDataModule):
    """Images under ``predict_dir``, resized to ``image_size``, for ``vlc predict``.

    Files that are not images, or cannot be read, are skipped with a warning each; the prediction writer lists
    them, with the reason, beside the predictions.

    Args:
        predict_dir: the folder to predict (every image under it), or one image file.
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
        super().__init__(
            batch_size, num_workers, image_size, predict_dir=predict_dir, max_image_pixels=max_image_pixels
        )
        self.bad_images = BadImages("predict")

    def setup_splits(self, stage: str) -> None:
        raise UserError("ImageFolderDataModule only predicts: use it with vlc predict (configs/predict/*.yaml)")
