"""The airbench network: a small VGG-like CNN trained from scratch to 94% on CIFAR-10 in a few GPU seconds.

From Keller Jordan, "94% on CIFAR-10 in 3.29 seconds on a single GPU" (2024, https://arxiv.org/abs/2404.00498,
code: https://github.com/KellerJordan/cifar10-airbench), which descends from David Page's ResNet-9 of "How to train
your ResNet" (Myrtle.ai, 2018, https://myrtle.ai/learn/how-to-train-your-resnet/). The body is a 2x2 convolution
(the patch-whitening stem), then three conv groups that each halve the resolution, then a 3x3 max pool:

    (B, 3, 32, 32) -> stem (B, 24, 31, 31) -> group1 (B, 64, 15, 15) -> group2 (B, 256, 7, 7)
    -> group3 (B, 256, 3, 3) -> pool (B, 256, 1, 1)

with widths ``[64, 256, 256]``. For 64 px images (TinyImageNet30) the stem can step by its patch side
(``stem_stride: 2``): its 2x2 patches then tile the image without overlap, a lossless change of basis (12 numbers in,
12 directions with both signs out) that halves the resolution at once, so that the rest of the network sees a 32x32
grid and costs what it costs at 32 px:

    (B, 3, 64, 64) -> stem (B, 24, 32, 32) -> group1 (B, 64, 16, 16) -> group2 (B, 256, 8, 8)
    -> group3 (B, 256, 4, 4) -> pool (B, 256, 2, 2)

What the paper adds to the plain network is a set of switches (:class:`AirbenchNet`'s options, the paper's values
their defaults), so that an ablation can turn each off: the whitening stem fitted to the training data, the identity
initialisation of the 3x3 convolutions and airbench's batch-norm settings. The output is scaled by 1/9, as
airbench scales its logits (the classifier's linear head follows).
"""

import math
from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from jsonargparse.typing import ClosedUnitInterval, NonNegativeInt, PositiveFloat, PositiveInt
from torch import nn

from vlc.models.backbone import ImageBackbone

PATCH = 2
"""Side of the whitening stem's patches (airbench's ``kernel_size``)."""

WHITENING_EPS = 5e-4
"""Added to each eigenvalue before its inverse square root, so that flat directions are not blown up."""

OUTPUT_SCALE = 1 / 9
"""airbench's scaling of the logits, applied here to the features before the classifier's linear head."""


class PatchWhitening(nn.Module):
    """A 2x2 convolution whose filters whiten the image patches of the training data (fitted once, then fixed).

    The filters are the eigenvectors of the patches' second-moment matrix, largest eigenvalue first, each divided by
    the square root of its eigenvalue, followed by their negatives (the GELU after the stem then keeps both signs of
    each direction): ``3 x 2 x 2 = 12`` directions, 24 channels. They are a buffer, so checkpoints carry them and no
    optimizer or ``freeze`` setting ever trains them; the bias is learnt. Until :meth:`fit` they hold a convolution's
    usual random initialisation.

    Args:
        in_channels: channels of the images.
        patch: side of the square patches.
        eps: added to each eigenvalue before its inverse square root.
        stride: step between patches (``patch``: non-overlapping patches, half the resolution for 2x2).
    """

    def __init__(self, in_channels: int = 3, patch: int = PATCH, eps: float = WHITENING_EPS, stride: int = 1) -> None:
        super().__init__()
        dim = in_channels * patch * patch
        weight = torch.empty(2 * dim, in_channels, patch, patch)
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5))  # nn.Conv2d's own initialisation
        self.register_buffer("weight", weight)
        self.bias = nn.Parameter(torch.zeros(2 * dim))
        self.eps, self.stride, self.out_channels = eps, stride, 2 * dim

    def extra_repr(self) -> str:
        c_out, c_in, p, _ = self.weight.shape
        return f"{c_in}, {c_out}, patch={p}, stride={self.stride}, eps={self.eps:g}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride)  # (B, C, H, W) -> (B, 2 C p^2, (H - p) / s + 1, ...)

    @torch.no_grad()
    def fit(self, images: torch.Tensor) -> None:
        """Set the filters from normalised images ``(N, C, H, W)`` (float64 statistics, on the CPU)."""
        _, c, p, _ = self.weight.shape
        sums, counts = zip(*(patch_moment(chunk, p, self.stride) for chunk in images.cpu().split(256)))
        moment = sum(sums) / sum(counts)  # (C p^2, C p^2)
        eigenvalues, eigenvectors = torch.linalg.eigh(moment)  # ascending; eigenvectors in the columns
        filters = (eigenvectors / (eigenvalues + self.eps).sqrt()).T.flip(0)  # (C p^2 directions, C p^2)
        filters = filters.reshape(-1, c, p, p)  # (C p^2, C, p, p)
        self.weight.copy_(torch.cat([filters, -filters]))


def patch_moment(images: torch.Tensor, patch: int, stride: int = 1) -> tuple[torch.Tensor, int]:
    """The sum of ``x x^T`` over the patches ``x`` of ``images`` ``(N, C, H, W)``, in float64, and their number.

    The patches are those a ``patch x patch`` convolution with that ``stride`` sees.
    """
    patches = F.unfold(images.double(), patch, stride=stride)  # (N, C p^2, L): one patch a column, channels slowest
    patches = patches.transpose(1, 2).flatten(0, 1)  # (N L, C p^2)
    return patches.T @ patches, len(patches)


def batch_norm(channels: int, momentum: float, eps: float, scale: bool) -> nn.BatchNorm2d:
    """A batch norm with the given running-statistics ``momentum`` (torch's convention) and ``eps``.

    ``scale: false`` fixes its scale at 1 (airbench: only the bias is learnt): the scale becomes a buffer of ones, so
    that no optimizer or ``freeze`` setting trains it, with the same name in checkpoints.
    """
    norm = nn.BatchNorm2d(channels, eps=eps, momentum=momentum)
    if not scale:
        del norm.weight
        norm.register_buffer("weight", torch.ones(channels))
    return norm


def identity_init(conv: nn.Conv2d) -> None:
    """Make the first ``in_channels`` filters of ``conv`` the identity (Dirac deltas): they pass their input through.

    An implicit residual connection at initialisation (Jordan 2024); the other filters keep their random values.
    """
    nn.init.dirac_(conv.weight.data[: conv.in_channels])


def conv3x3(c_in: int, c_out: int, identity: bool) -> nn.Conv2d:
    """A 3x3 convolution without bias (a batch norm follows), size-preserving; identity-initialised if asked."""
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    if identity:
        identity_init(conv)
    return conv


def conv_group(c_in: int, c_out: int, norm: Callable[[int], nn.Module], identity: bool) -> nn.Sequential:
    """conv3x3 -> maxpool2 -> BN -> GELU -> conv3x3 -> BN -> GELU: ``(B, c_in, H, W) -> (B, c_out, H/2, W/2)``."""
    return nn.Sequential(
        OrderedDict(
            conv1=conv3x3(c_in, c_out, identity),
            pool=nn.MaxPool2d(2),
            norm1=norm(c_out),
            act1=nn.GELU(),
            conv2=conv3x3(c_out, c_out, identity),
            norm2=norm(c_out),
            act2=nn.GELU(),
        )
    )


class Scale(nn.Module):
    """Multiplies its input by a constant ``factor``."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor:.4g}"


def airbench_net(
    widths: list[int],
    whiten: bool,
    identity_init: bool,
    bn_momentum: float,
    bn_eps: float,
    bn_scale: bool,
    stem_stride: int,
) -> nn.Sequential:
    """The airbench body: ``(B, 3, H, W) -> (B, widths[-1], h, w)``, ``h = 1`` at 32 px (see the module docstring).

    Children: ``stem`` (the 2x2 convolution, 3 -> 24 channels, no padding), ``act``, ``group1 ...`` (one conv group
    per width), ``pool`` (3x3 max pool, in ceil mode so that grids of other sizes than 3x3 lose no border) and
    ``scale`` (x 1/9). The arguments are :class:`AirbenchNet`'s.
    """
    if whiten:
        stem = PatchWhitening(stride=stem_stride)
    else:
        stem = nn.Conv2d(3, 3 * PATCH * PATCH * 2, PATCH, stride=stem_stride)
    layers: OrderedDict[str, nn.Module] = OrderedDict(stem=stem, act=nn.GELU())
    norm = partial(batch_norm, momentum=bn_momentum, eps=bn_eps, scale=bn_scale)
    c_in = stem.out_channels
    for i, width in enumerate(widths, 1):
        layers[f"group{i}"] = conv_group(c_in, width, norm, identity_init)
        c_in = width
    layers["pool"] = nn.MaxPool2d(3, ceil_mode=True)  # 3x3 -> 1x1 at 32 px; ceil: no row or column left out
    layers["scale"] = Scale(OUTPUT_SCALE)
    return nn.Sequential(layers)


class AirbenchNet(ImageBackbone):
    """The airbench network as a backbone, for 32 px images (64 px with ``stem_stride: 2``).

    The defaults are airbench94's. In a config: ``class_path: vlc.models.AirbenchNet``; the body's children are
    those of :func:`airbench_net`.

    Args:
        widths: channels of each conv group (the grid has ``widths[-1]`` channels).
        whiten: the stem is a :class:`PatchWhitening` layer, fitted to training images (:meth:`init_from_data`) and
            then fixed; ``false``: an ordinary trained 2x2 convolution of the same shape.
        identity_init: identity-initialise the first ``in_channels`` filters of every 3x3 convolution.
        bn_momentum: momentum of the batch norms' running statistics, in torch's convention (airbench's
            ``batchnorm_momentum: 0.6`` is torch's 0.4).
        bn_eps: the batch norms' ``eps``.
        bn_scale: learn the batch norms' scale; ``false``: it stays 1 and only their bias is learnt.
        stem_stride: step of the stem: 1 (airbench, 32 px images) or 2 (non-overlapping patches: 64 px images cost
            what 32 px ones cost, and a checkpoint fits either setting).
        whiten_bias_epochs: the whitening stem's bias trains during the first this many epochs, then stays fixed
            (airbench: 3); ``null``: it trains throughout.
        **kwargs: the preprocessing of :class:`ImageBackbone` (``image_size``, ``mean``, ``std``, ``channels_last``).
    """

    def __init__(
        self,
        widths: list[int] = [64, 256, 256],  # noqa: B006 (jsonargparse needs a visible default)
        whiten: bool = True,
        identity_init: bool = True,
        bn_momentum: ClosedUnitInterval = 0.4,
        bn_eps: PositiveFloat = 1e-12,
        bn_scale: bool = False,
        stem_stride: PositiveInt = 1,
        whiten_bias_epochs: NonNegativeInt | None = 3,
        **kwargs: Any,
    ) -> None:
        body = airbench_net(widths, whiten, identity_init, bn_momentum, bn_eps, bn_scale, stem_stride)
        super().__init__(body, widths[-1], **kwargs)
        self.whiten_bias_epochs = whiten_bias_epochs

    def resting_parameters(self, epoch: int) -> list[nn.Parameter]:
        """The whitening stem's bias from epoch ``whiten_bias_epochs`` on (none before, or without whitening)."""
        layer = self.whitening
        if layer is None or self.whiten_bias_epochs is None or epoch < self.whiten_bias_epochs:
            return []
        return [layer.bias]

    @property
    def feature_layer(self) -> nn.Module:
        """The last conv group: its grid (3x3 at 32 px) is the last before the body's pool makes it 1x1."""
        return [module for name, module in self.body.named_children() if name.startswith("group")][-1]

    @property
    def whitening(self) -> PatchWhitening | None:
        """The whitening stem (the body's first layer), or None with ``whiten: false``."""
        return next((m for m in self.body.modules() if isinstance(m, PatchWhitening)), None)

    @torch.no_grad()
    def init_from_data(self, images: torch.Tensor) -> str | None:
        """Fit the whitening stem to the 2x2 patches of ``images``; what was done, or None without whitening.

        ``images``: a sample of training images, uint8 ``(N, 3, H, W)``, preprocessed here as :meth:`forward` does.
        The filters are buffers, so checkpoints carry them.
        """
        layer = self.whitening
        if layer is None:
            return None
        layer.fit(self.preprocess(images.to(self.mean.device)))
        return f"backbone: whitening stem fitted to the 2x2 patches of {len(images):,} training images"
