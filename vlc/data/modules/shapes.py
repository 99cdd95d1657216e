"""The embedded default datasets, no files: procedural shapes, 30 classes at 64x64, or scenes of two with sentences."""

import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt

from vlc.data.datasets.images import Samples
from vlc.data.datasets.shapes import CLASS_NAMES, captions, render_scenes, sample_scene, shapes_samples
from vlc.data.modules.captioning import CaptionDataModule
from vlc.data.modules.classification import ClassificationDataModule


class ShapesDataModule(ClassificationDataModule):
    """Shapes on noisy backgrounds (``vlc.data.datasets.shapes``); the label is the first shape's colour and kind.

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
    def source_class_names(self) -> list[str]:
        return list(CLASS_NAMES)

    def labelled(self, split: str) -> Samples:
        start, count = (0, self.num_images) if split == "train" else (self.num_images, self.num_test)
        return shapes_samples(start, count, self.num_shapes, self.generator_seed, self.image_size)


class ShapesCaptionsDataModule(CaptionDataModule):
    """Scenes of ``vlc.data.datasets.shapes`` with three true phrasings each (the references).

    For example ``a small red circle above a large blue square``, ``there is a small red circle above a large
    blue square`` and ``a large blue square below a small red circle``.

    Args:
        num_images: images in all (split into train/val/test by ``split``).
        num_shapes: shapes per image (2: the captions name both and their relation).
        generator_seed: seed of the generator; the same seed always draws the same images.
        image_size: resize the 64x64 renderings to this size (``null``: 64).
        **kwargs: the shared options of :class:`~vlc.data.modules.captioning.CaptionDataModule`.
    """

    def __init__(
        self,
        num_images: PositiveInt = 6000,
        num_shapes: PositiveInt = 2,
        generator_seed: int = 0,
        image_size: PositiveInt | None = None,
        **kwargs,
    ) -> None:
        super().__init__(image_size=image_size, **kwargs)
        self.num_images, self.num_shapes, self.generator_seed = num_images, num_shapes, generator_seed

    def list_images(self) -> tuple[list[int], list[list[str]]]:
        keys = list(range(self.num_images))
        return keys, [captions(sample_scene(self.generator_seed, i, self.num_shapes)) for i in keys]

    def load_images(self, positions: list[int]) -> torch.Tensor:
        return render_scenes(positions, self.num_shapes, self.generator_seed, self.image_size)  # keys = positions
