"""The embedded default dataset for classification: procedural shapes, 30 classes at 64x64, no files."""

import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt

from vlc.data.classification import ClassificationDataModule, Samples
from vlc.data.shapes import CLASS_NAMES, make_images


class ShapesDataModule(ClassificationDataModule):
    """Coloured shapes on noisy backgrounds (``vlc.data.shapes``); the label is the first shape's colour and kind.

    Args:
        num_images: labelled images for training and validation (split by ``val_fraction``).
        num_test: further images for ``vlc test``.
        num_shapes: shapes per image (the extra shapes are distractors).
        generator_seed: seed of the generator; the same seed always draws the same images.
        **kwargs: the shared options of ``ClassificationDataModule`` (batch size, augmentation, ...).
    """

    def __init__(
        self,
        num_images: PositiveInt = 6000,
        num_test: NonNegativeInt = 1500,
        num_shapes: PositiveInt = 1,
        generator_seed: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.num_images, self.num_test = num_images, num_test
        self.num_shapes, self.generator_seed = num_shapes, generator_seed

    @property
    def class_names(self) -> list[str]:
        return list(CLASS_NAMES)

    def labelled(self, split: str) -> Samples:
        start, count = (0, self.num_images) if split == "train" else (self.num_images, self.num_test)
        images = make_images(self.generator_seed, start, count, self.num_shapes)
        images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # (N, H, W, 3) -> (N, 3, H, W)
        if self.image_size is not None:
            from vlc.data.image_io import resize_batch

            images = resize_batch(images, self.image_size)
        labels = torch.arange(start, start + count) % len(CLASS_NAMES)
        return images, labels
