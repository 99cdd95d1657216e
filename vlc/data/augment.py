"""Batched augmentation on uint8 image tensors, applied after the batch reaches the device, and the test-time views.

Every random draw comes from the ``generator`` passed in (seeded per batch, see ``vlc.data.loading``), and the
derandomised flips are a function of the run's seed, the epoch and each image's index, so that a resumed run
augments exactly as a run never interrupted.
"""

import torch
import torch.nn.functional as F

from vlc.data.loading import mix

PRESETS = ("none", "flip", "crop_flip")

MASK32 = 0xFFFFFFFF


def random_flip(
    images: torch.Tensor, generator: torch.Generator | None = None, flips: torch.Tensor | None = None
) -> torch.Tensor:
    """Mirror a random half of a ``(B, C, H, W)`` batch left-right, or the images ``flips`` ``(B,)`` (bool) marks."""
    if flips is None:
        flips = torch.rand(images.shape[0], device=images.device, generator=generator) < 0.5
    return torch.where(flips[:, None, None, None], images.flip(-1), images)


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pad each image by ``padding`` (reflect) and cut a random crop of the original size from it."""
    B, _, H, W = images.shape
    padded = F.pad(images.float(), (padding,) * 4, mode="reflect").to(images.dtype)
    dy, dx = torch.randint(0, 2 * padding + 1, (2, B), device=images.device, generator=generator)
    rows = (dy[:, None] + torch.arange(H, device=images.device))[:, None, :, None]  # (B, 1, H, 1)
    cols = (dx[:, None] + torch.arange(W, device=images.device))[:, None, None, :]  # (B, 1, 1, W)
    batch = torch.arange(B, device=images.device)[:, None, None, None]
    channels = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
    return padded[batch, channels, rows, cols]  # (B, C, H, W)


def coin(index: torch.Tensor, seed: int) -> torch.Tensor:
    """A fair coin (bool) for each integer of ``index``: a fixed function of ``(seed, index)``, on any device.

    Wellons' ``lowbias32`` integer hash of the index mixed with the seed, in int64 arithmetic kept to 32 bits (a
    product that overflows int64 still has the right low 32 bits); the coin is the top bit of the hash.
    """
    x = (index.long() ^ (mix(seed, 3) & MASK32)) & MASK32
    x = ((x ^ (x >> 16)) * 0x7FEB352D) & MASK32
    x = ((x ^ (x >> 15)) * 0x846CA68B) & MASK32
    return ((x ^ (x >> 16)) >> 31).bool()


def alternating_flips(index: torch.Tensor, epoch: int, seed: int) -> torch.Tensor:
    """Which images of a batch to mirror, given their dataset ``index`` ``(B,)``: airbench's derandomised flips.

    A seeded random half of the images is mirrored in even epochs, the other half in odd epochs, so every image is
    seen both ways in any two consecutive epochs (random flips show a quarter of them the same way twice; Jordan
    2024, "94% on CIFAR-10 in 3.29 seconds on a single GPU", section 3.6). A function of the run's ``seed``, the
    ``epoch`` and the index alone.
    """
    return coin(index, seed) ^ bool(epoch % 2)


def augment(
    images: torch.Tensor,
    preset: str,
    generator: torch.Generator | None = None,
    padding: int | None = None,
    flips: torch.Tensor | None = None,
) -> torch.Tensor:
    """Apply an augmentation preset (see ``PRESETS``) to a training batch, drawing from ``generator``.

    Args:
        images: the batch ``(B, C, H, W)``.
        preset: ``none``, ``flip`` or ``crop_flip``.
        generator: where the random draws come from.
        padding: ``crop_flip``'s reflect padding before the random crop (None: 1/8 of the side, at least 1).
        flips: ``(B,)`` bool, which images the flip mirrors (e.g. :func:`alternating_flips`); None: a random half.
    """
    if preset == "none":
        return images
    if preset == "flip":
        return random_flip(images, generator, flips)
    if preset == "crop_flip":
        padding = max(1, images.shape[-1] // 8) if padding is None else padding
        return random_flip(random_crop(images, padding, generator), generator, flips)
    raise ValueError(f"unknown augmentation preset {preset!r}; expected one of {PRESETS}")


def evaluation_views(images: torch.Tensor, flip: bool, translate: bool) -> list[tuple[float, torch.Tensor]]:
    """The views of an evaluation batch whose logits are averaged, with their weights (which sum to 1).

    ``flip``: each view and its mirror image, half the view's weight each. ``translate``: airbench's test-time
    translation (Jordan 2024, ``tta_level: 2`` with ``flip``): half the weight on the batch itself, a quarter on it
    shifted by one pixel towards the bottom right and a quarter towards the top left (reflect padding). Neither:
    the batch alone.
    """
    views = [(1.0, images)]
    if translate:
        H, W = images.shape[-2:]
        padded = F.pad(images.float(), (1, 1, 1, 1), mode="reflect").to(images.dtype)  # (B, C, H + 2, W + 2)
        views = [(0.5, images), (0.25, padded[..., :H, :W]), (0.25, padded[..., 2:, 2:])]
    if flip:
        views = [(weight / 2, view) for weight, image in views for view in (image, image.flip(-1))]
    return views
