"""Grad-CAM (Selvaraju et al., 2017): where in the image the evidence for a class lies, on one layer's grid.

For the grid ``A`` ``(B, C, h, w)`` of a layer and the score ``y`` of the target class (a logit, before softmax),
each channel's weight is the spatial mean of ``dy/dA``, and the map is ``ReLU(sum_c weight_c A_c)`` ``(B, h, w)``.
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def grad_cam(model: nn.Module, layer: nn.Module, images: Tensor, targets: Tensor, forward: Callable | None = None):
    """Grad-CAM maps ``(B, h, w)`` (float32, >= 0) of ``layer``'s output for the classes ``targets`` ``(B,)``.

    Computed in float32 with autocast off and ``model`` in eval mode (its mode is restored), with gradients on even
    inside ``torch.no_grad``/``inference_mode`` (as in Lightning's predict loop); the weights get no gradient.

    Args:
        model: the network (switched to eval mode while the maps are computed).
        layer: the sub-module of ``model`` whose output grid ``(B, C, h, w)`` is explained; it must run once per
            call of ``forward``.
        images: the input batch ``(B, 3, H, W)`` (uint8 or float; it is passed on as float32).
        targets: the class index to explain, one per image ``(B,)``.
        forward: maps images to scores ``(B, num_classes)``; ``model`` itself when not given.
    """
    grids: list[Tensor] = []
    handle = layer.register_forward_hook(lambda module, args, output: grids.append(output))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(False), torch.enable_grad(), torch.autocast(images.device.type, enabled=False):
            x = images.float().clone().requires_grad_()  # normal tensors (not inference ones); x needs grad
            index = targets.to(images.device).long().view(-1, 1).clone()  # (B, 1)
            scores = (forward or model)(x).float()  # (B, K)
            picked = scores.gather(1, index).sum()  # sum_b y_b[target_b]
            if len(grids) != 1:
                raise RuntimeError(f"Grad-CAM's layer ran {len(grids)} times in one forward pass (expected once)")
            (grad,) = torch.autograd.grad(picked, grids[0])  # (B, C, h, w)
    finally:
        handle.remove()
        model.train(was_training)
    grid = grids[0].detach().float()
    weights = grad.float().mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
    return torch.relu((weights * grid).sum(dim=1))  # (B, h, w)


def upsample(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Maps ``(B, h, w)`` resized (bilinear) to ``size`` and scaled to 0-1 per image (a map of zeros stays zero)."""
    up = F.interpolate(maps[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]  # (B, H, W)
    peak = up.flatten(1).amax(dim=1).clamp(min=1e-12).view(-1, 1, 1)  # (B, 1, 1)
    return (up / peak).clamp(0, 1)
