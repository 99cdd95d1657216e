"""The embedded default dataset for captioning: procedural scenes of two shapes with true sentences, no files."""

import numpy as np
import torch
from jsonargparse.typing import PositiveInt
from torch.utils.data import Dataset

from vlc.data.captioning import CaptionDataModule
from vlc.data.image_io import resize_batch
from vlc.data.shapes import captions, render, sample_scene


def render_scenes(keys: list[int], num_shapes: int = 2, generator_seed: int = 0, image_size: int | None = None):
    """The scenes ``keys`` of the generator as one ``(N, 3, H, W)`` uint8 tensor."""
    images = np.stack([render(sample_scene(generator_seed, i, num_shapes), generator_seed, i) for i in keys])
    images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # (N, 64, 64, 3) -> (N, 3, 64, 64)
    return resize_batch(images, image_size) if image_size is not None else images


class ShapesCaptions(Dataset):
    """The shapes scenes as a plain ``Dataset`` of ``{"images", "references", "keys"}``, usable without Lightning.

    Args:
        num_images: how many scenes.
        num_shapes: shapes per scene.
        generator_seed: seed of the generator.
        image_size: resize the 64x64 renderings to this size.
    """

    def __init__(
        self, num_images: int = 6000, num_shapes: int = 2, generator_seed: int = 0, image_size: int | None = None
    ) -> None:
        self.keys = list(range(num_images))
        self.references = [captions(sample_scene(generator_seed, i, num_shapes)) for i in self.keys]
        self.images = render_scenes(self.keys, num_shapes, generator_seed, image_size)

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> dict:
        return {"images": self.images[i], "references": self.references[i], "keys": self.keys[i]}


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
        return render_scenes(positions, self.num_shapes, self.generator_seed, self.image_size)  # keys = positions
