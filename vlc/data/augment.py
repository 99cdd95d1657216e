"""Batched augmentation on uint8 image tensors, applied after the batch reaches the device.

Every random draw comes from the ``generator`` passed in (seeded per batch, see ``vlc.data.loading``), so that a
resumed run augments exactly as a run never interrupted.
"""

import torch
import torch.nn.functional as F

PRESETS = ("none", "flip", "crop_flip")


def random_flip(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror a random half of a ``(B, C, H, W)`` batch left-right."""
    flip = torch.rand(images.shape[0], device=images.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


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


def augment(images: torch.Tensor, preset: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply an augmentation preset (see ``PRESETS``) to a training batch, drawing from ``generator``."""
    if preset == "none":
        return images
    if preset == "flip":
        return random_flip(images, generator)
    if preset == "crop_flip":
        return random_flip(random_crop(images, max(1, images.shape[-1] // 8), generator), generator)
    raise ValueError(f"unknown augmentation preset {preset!r}; expected one of {PRESETS}")
