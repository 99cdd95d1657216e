"""The embedded default dataset for classification: procedural shapes, 30 classes at 64x64, no files."""

import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt

from vlc.data.classification import ClassificationDataModule, Samples
from vlc.data.datasets import TensorImages
from vlc.data.image_io import resize_batch
from vlc.data.shapes import CLASS_NAMES, make_images


def shapes_samples(start: int, count: int, num_shapes: int = 1, generator_seed: int = 0, image_size: int | None = None):
    """Images ``start .. start + count - 1`` of the generator, ``(count, 3, H, W)`` uint8, and their labels."""
    images = make_images(generator_seed, start, count, num_shapes)
    images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # (N, H, W, 3) -> (N, 3, H, W)
    if image_size is not None:
        images = resize_batch(images, image_size)
    return images, torch.arange(start, start + count) % len(CLASS_NAMES)


class Shapes(TensorImages):
    """The shapes images as a plain ``Dataset`` of ``{"images", "labels"}`` samples, usable without Lightning.

    Args:
        num_images: how many images.
        start: index of the first (the data module's test images follow its ``num_images`` training ones).
        num_shapes: shapes per image (the extra shapes are distractors).
        generator_seed: seed of the generator.
        image_size: resize the 64x64 renderings to this size.
    """

    class_names = list(CLASS_NAMES)

    def __init__(
        self,
        num_images: int = 6000,
        start: int = 0,
        num_shapes: int = 1,
        generator_seed: int = 0,
        image_size: int | None = None,
    ) -> None:
        super().__init__(*shapes_samples(start, num_images, num_shapes, generator_seed, image_size))


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
        return shapes_samples(start, count, self.num_shapes, self.generator_seed, self.image_size)
