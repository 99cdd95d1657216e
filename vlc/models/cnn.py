"""vlc's own CNN: a small residual network (He et al., 2016) sized for 32-64 px images on a CPU."""

from typing import Any

import torch
from torch import nn

from vlc.models.backbone import ImageBackbone


def conv_bn(c_in: int, c_out: int, stride: int = 1, batch_norm: bool = True) -> nn.Sequential:
    """3x3 convolution, batch norm (optional) and ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, 1, bias=not batch_norm),
        nn.BatchNorm2d(c_out) if batch_norm else nn.Identity(),
        nn.ReLU(inplace=True),
    )


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity shortcut (a 1x1 projection when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, batch_norm: bool = True) -> None:
        super().__init__()
        self.conv1 = conv_bn(c_in, c_out, stride, batch_norm)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=not batch_norm)
        self.bn2 = nn.BatchNorm2d(c_out) if batch_norm else nn.Identity()
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=not batch_norm),
                nn.BatchNorm2d(c_out) if batch_norm else nn.Identity(),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn2(self.conv2(self.conv1(x))) + self.shortcut(x))


def residual_cnn(widths: list[int], depths: int | list[int], stem_width: int, batch_norm: bool) -> nn.Sequential:
    """A full-resolution stem, then one stage per width, each halving the resolution.

    Children are numbered ``0`` (the stem), ``1 ...`` (the blocks); ``(B, 3, H, W) -> (B, widths[-1], H/2^n, W/2^n)``.

    Args:
        widths: channels of each stage; stage ``i`` works at ``1 / 2**(i+1)`` of the input resolution.
        depths: residual blocks per stage (one number for all stages, or one per stage).
        stem_width: channels of the full-resolution stem convolution.
        batch_norm: batch normalisation after every convolution.
    """
    depths = [depths] * len(widths) if isinstance(depths, int) else depths
    if len(depths) != len(widths):
        raise ValueError(f"depths {depths} and widths {widths} must have the same length")
    layers: list[nn.Module] = [conv_bn(3, stem_width, 1, batch_norm)]
    c_in = stem_width
    for width, depth in zip(widths, depths):
        layers.append(BasicBlock(c_in, width, stride=2, batch_norm=batch_norm))
        layers += [BasicBlock(width, width, batch_norm=batch_norm) for _ in range(depth - 1)]
        c_in = width
    return nn.Sequential(*layers)


class ResidualCNN(ImageBackbone):
    """vlc's residual CNN as a backbone: ``(B, 3, H, W) -> (B, widths[-1], H / 2**n, W / 2**n)``, n stages.

    In a config: ``class_path: vlc.models.ResidualCNN``. The body's children are numbered ``0`` (the stem) and
    ``1 ...`` (the blocks), as :meth:`ImageBackbone.freeze` names them.

    Args:
        widths: channels of each stage; stage ``i`` works at ``1 / 2**(i+1)`` of the input resolution.
        depths: residual blocks per stage (one number for all stages, or one per stage).
        stem_width: channels of the full-resolution stem convolution.
        batch_norm: batch normalisation after every convolution.
        **kwargs: the preprocessing of :class:`ImageBackbone` (``image_size``, ``mean``, ``std``, ``channels_last``).
    """

    def __init__(
        self,
        widths: list[int] = [32, 64, 128, 256],  # noqa: B006 (jsonargparse needs a visible default)
        depths: int | list[int] = 1,
        stem_width: int = 32,
        batch_norm: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(residual_cnn(widths, depths, stem_width, batch_norm), widths[-1], **kwargs)
