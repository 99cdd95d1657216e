"""The embedded default dataset for captioning: procedural scenes of two shapes with true sentences, no files."""

import numpy as np
import torch
from jsonargparse.typing import PositiveInt

from vlc.data.captioning import CaptionDataModule
from vlc.data.image_io import resize_batch
from vlc.data.shapes import captions, render, sample_scene


class ShapesCaptionsDataModule(CaptionDataModule):
    """Scenes of ``vlc.data.shapes`` with three true phrasings each (the references).

    For example ``a small red circle above a large blue square``, ``there is a small red circle above a large
    blue square`` and ``a large blue square below a small red circle``.

    Args:
        num_images: images in all (split into train/val/test by ``split``).
        num_shapes: shapes per image (2: the captions name both and their relation).
        generator_seed: seed of the generator; the same seed always draws the same images.
        image_size: resize the 64x64 renderings to this size (``null``: 64).
        **kwargs: the shared options of :class:`~vlc.data.captioning.CaptionDataModule`.
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
        seed, n = self.generator_seed, self.num_shapes
        images = np.stack([render(sample_scene(seed, i, n), seed, i) for i in positions])  # (N, 64, 64, 3)
        images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # (N, 3, 64, 64)
        if self.image_size is not None:
            images = resize_batch(images, self.image_size)
        return images
