"""Procedural shapes: an embedded image dataset that needs no files and no network, for both tasks.

Every image is a *scene* of one or more coloured shapes on a textured grey background, drawn
deterministically from ``(seed, index)``. The classification label is the first shape's colour and
kind (6 kinds x 5 colours = 30 classes); a captioning dataset derives true sentences from the same
scene ("a small red circle above a large blue square"). :class:`Shapes` and :class:`ShapesCaptions` are the two
as plain ``Dataset``s.
"""

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from vlc.data.datasets.images import TensorImages
from vlc.images import resize_batch

KINDS = ("circle", "square", "triangle", "star", "cross", "ring")
COLORS = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 80, 230),
    "yellow": (235, 215, 40),
    "purple": (150, 50, 200),
}
CLASS_NAMES = [f"{color}_{kind}" for kind in KINDS for color in COLORS]
RELATIONS = {"left": "to the left of", "right": "to the right of", "above": "above", "below": "below"}


@dataclass(frozen=True)
class Shape:
    """One shape of a scene: what it is and where it is drawn (centre and radius in pixels)."""

    kind: str
    color: str
    cx: float
    cy: float
    radius: float

    @property
    def label(self) -> int:
        return KINDS.index(self.kind) * len(COLORS) + list(COLORS).index(self.color)

    @property
    def size(self) -> str:
        return "small" if self.radius < 0.19 * 64 else "large"

    def phrase(self) -> str:
        return f"{self.size} {self.color} {self.kind}"


def _rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, index])


def sample_scene(seed: int, index: int, num_shapes: int = 1, size: int = 64) -> list[Shape]:
    """Draw the shapes of image ``index``; with two shapes they sit in opposite halves of the image."""
    rng = _rng(seed, index)
    label = index % len(CLASS_NAMES)  # balanced classes for the first shape
    kinds = [KINDS[label // len(COLORS)]] + list(rng.choice(KINDS, num_shapes - 1))
    colors = [list(COLORS)[label % len(COLORS)]] + list(rng.choice(list(COLORS), num_shapes - 1))
    if num_shapes == 1:
        radii = [rng.uniform(0.12, 0.3) * size]
        boxes = [(0.0, 0.0, 1.0, 1.0)]
    else:
        radii = list(rng.choice([0.13, 0.25], num_shapes) * size * rng.uniform(0.9, 1.1, num_shapes))
        halves = (
            [(0.0, 0.0, 0.5, 1.0), (0.5, 0.0, 1.0, 1.0)]
            if rng.random() < 0.5
            else [
                (0.0, 0.0, 1.0, 0.5),
                (0.0, 0.5, 1.0, 1.0),
            ]
        )
        boxes = halves if rng.random() < 0.5 else halves[::-1]
    shapes = []
    for kind, color, r, (x0, y0, x1, y1) in zip(kinds, colors, radii, boxes):
        cx = rng.uniform(x0 * size + r, x1 * size - r) if (x1 - x0) * size > 2 * r else (x0 + x1) * size / 2
        cy = rng.uniform(y0 * size + r, y1 * size - r) if (y1 - y0) * size > 2 * r else (y0 + y1) * size / 2
        shapes.append(Shape(str(kind), str(color), float(cx), float(cy), float(r)))
    return shapes


def _mask(shape: Shape, xx: np.ndarray, yy: np.ndarray, angle: float) -> np.ndarray:
    dx, dy = xx - shape.cx, yy - shape.cy
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = (cos * dx + sin * dy) / shape.radius, (-sin * dx + cos * dy) / shape.radius
    rho, theta = np.hypot(u, v), np.arctan2(v, u)
    if shape.kind == "circle":
        return rho <= 1.0
    if shape.kind == "ring":
        return (rho <= 1.0) & (rho >= 0.55)
    if shape.kind == "square":
        return (np.abs(u) <= 0.8) & (np.abs(v) <= 0.8)
    if shape.kind == "cross":
        return ((np.abs(u) <= 1.0) & (np.abs(v) <= 0.3)) | ((np.abs(v) <= 1.0) & (np.abs(u) <= 0.3))
    if shape.kind == "triangle":  # equilateral, pointing up before rotation
        return (v <= 0.5) & (v >= np.sqrt(3) * u - 1.0) & (v >= -np.sqrt(3) * u - 1.0)
    if shape.kind == "star":  # five points: the radius oscillates with the angle
        return rho <= 0.55 + 0.45 * np.clip(np.cos(5 * (theta + np.pi / 2)), 0, 1) ** 1.5
    raise ValueError(f"unknown shape kind {shape.kind!r}")


def render(shapes: list[Shape], seed: int, index: int, size: int = 64) -> np.ndarray:
    """Draw a scene as a ``(size, size, 3)`` uint8 RGB array on a noisy grey gradient."""
    rng = _rng(seed + 1, index)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    base = rng.uniform(60, 190)
    gradient = rng.uniform(-40, 40) * (xx / size - 0.5) + rng.uniform(-40, 40) * (yy / size - 0.5)
    tint = rng.uniform(-12, 12, 3)
    image = base + gradient[..., None] + tint + rng.normal(0, 8, (size, size, 3))
    for shape in shapes:
        color = np.array(COLORS[shape.color], dtype=np.float32) + rng.uniform(-25, 25, 3)
        mask = _mask(shape, xx, yy, rng.uniform(-0.4, 0.4))
        image[mask] = color + rng.normal(0, 6, (int(mask.sum()), 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def relation(a: Shape, b: Shape) -> str:
    """Where ``a`` is relative to ``b``: the dominant axis of their offset."""
    dx, dy = a.cx - b.cx, a.cy - b.cy
    if abs(dx) >= abs(dy):
        return "left" if dx < 0 else "right"
    return "above" if dy < 0 else "below"


def captions(shapes: list[Shape]) -> list[str]:
    """Several true phrasings of a scene, used as reference captions."""
    first = shapes[0].phrase()
    if len(shapes) == 1:
        return [f"a {first}", f"a {first} on a grey background", f"there is a {first}"]
    second = shapes[1].phrase()
    forward = RELATIONS[relation(shapes[0], shapes[1])]
    backward = RELATIONS[relation(shapes[1], shapes[0])]
    return [
        f"a {first} {forward} a {second}",
        f"there is a {first} {forward} a {second}",
        f"a {second} {backward} a {first}",
    ]


def make_images(seed: int, start: int, count: int, num_shapes: int = 1, size: int = 64) -> np.ndarray:
    """Render images ``start .. start+count-1`` as one ``(count, size, size, 3)`` uint8 array."""
    out = np.empty((count, size, size, 3), dtype=np.uint8)
    for i in range(count):
        index = start + i
        out[i] = render(sample_scene(seed, index, num_shapes, size), seed, index, size)
    return out


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
