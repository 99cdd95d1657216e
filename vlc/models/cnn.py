"""vlc's own CNN: a small residual network (He et al., 2016) sized for 32-64 px images on a CPU."""

import torch
from torch import nn


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


class ResidualCNN(nn.Module):
    """Stem, then one stage per width (each halves the resolution), global average pooling and a linear head.

    ``features`` maps images to a ``(B, widths[-1])`` vector and ``head`` maps that to class logits, so that
    transfer learning can keep the one and rebuild the other.

    Args:
        num_classes: output classes.
        widths: channels of each stage; stage ``i`` works at ``1 / 2**(i+1)`` of the input resolution.
        depths: residual blocks per stage (one number for all stages, or one per stage).
        stem_width: channels of the full-resolution stem convolution.
        batch_norm: batch normalisation after every convolution.
        dropout: dropout before the linear head.
    """

    def __init__(
        self,
        num_classes: int,
        widths: list[int] = [64, 128, 256, 512],  # noqa: B006 (jsonargparse needs a visible default)
        depths: int | list[int] = 1,
        stem_width: int = 32,
        batch_norm: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        depths = [depths] * len(widths) if isinstance(depths, int) else depths
        if len(depths) != len(widths):
            raise ValueError(f"depths {depths} and widths {widths} must have the same length")
        layers: list[nn.Module] = [conv_bn(3, stem_width, 1, batch_norm)]
        c_in = stem_width
        for width, depth in zip(widths, depths):
            layers.append(BasicBlock(c_in, width, stride=2, batch_norm=batch_norm))
            layers += [BasicBlock(width, width, batch_norm=batch_norm) for _ in range(depth - 1)]
            c_in = width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(c_in, num_classes))
        self.num_features = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, 3, H, W) -> (B, num_features) -> (B, num_classes)
