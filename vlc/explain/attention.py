"""The attention captioner's maps: for each word of a caption, where the decoder looked when it chose that word.

Beam search keeps no attention weights, so the decoder is run again teacher-forced on the chosen caption: the step
whose input is ``<start> w_1 ... w_{t-1}`` attends with the weights ``alpha_t`` ``(N,)`` over the grid's ``N = h w``
cells and predicts ``w_t``. As in the "Show, Attend and Tell" tutorial's ``visualize_att`` each word's weights are
upsampled over the image and smoothed (bilinear, then a Gaussian blur of a third of the upsampling factor).
"""

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.transforms.functional import gaussian_blur


class WordAttention(NamedTuple):
    """One caption's attention: its words, each word's weights over the grid, and those weights over the image.

    ``weights`` ``(T, h, w)``: each word's sum to 1. ``maps`` ``(T, H, W)``: smoothed, scaled to 0-1.
    """

    words: list[str]
    weights: Tensor
    maps: Tensor


@torch.no_grad()
def word_attention(decoder: nn.Module, features: Tensor, tokens: Tensor) -> Tensor:
    """The weights ``(B, T, N)`` with which ``decoder`` attends to ``features`` while it reads ``tokens``.

    Computed in float32 with autocast off and the decoder in eval mode (its mode is restored).

    Args:
        decoder: an attention decoder (``forward_with_alphas``, e.g. ``AttentionLSTMDecoder``).
        features: annotation vectors ``(B, N, F)``.
        tokens: the decoder's inputs ``(B, T)``: ``<start>`` and the caption's words but the last.
    """
    was_training = decoder.training
    decoder.eval()
    try:
        with torch.autocast(features.device.type, enabled=False):
            return decoder.forward_with_alphas(features.float(), tokens)[1].float()  # (B, T, N)
    finally:
        decoder.train(was_training)


def smooth_maps(alphas: Tensor, grid: tuple[int, int], size: tuple[int, int]) -> Tensor:
    """Weights ``(T, N)`` over a ``grid`` ``(h, w)`` as maps ``(T, H, W)`` over an image of ``size``, each 0-1.

    Upsampled (bilinear) and blurred with a Gaussian of sigma a third of the upsampling factor (the tutorial's
    ``pyramid_expand(upscale=24, sigma=8)``), then divided by each map's maximum.
    """
    if len(alphas) == 0:
        return alphas.new_zeros((0, *size))
    maps = alphas.float().view(-1, 1, *grid)  # (T, 1, h, w)
    maps = F.interpolate(maps, size=size, mode="bilinear", align_corners=False)  # (T, 1, H, W)
    sigma = max(size[0] / grid[0], size[1] / grid[1]) / 3
    kernel = min(2 * math.ceil(3 * sigma) + 1, 2 * min(size) - 1)  # odd; its padding must stay inside the image
    if kernel >= 3:
        maps = gaussian_blur(maps, [kernel, kernel], [sigma, sigma])
    maps = maps[:, 0]  # (T, H, W)
    return maps / maps.flatten(1).amax(dim=1).clamp(min=1e-12).view(-1, 1, 1)
