"""One image backbone for every task: uint8 images in, a feature grid out, preprocessing included.

The classifier puts pooling, dropout and a linear head on top; the captioner pools the grid into one vector (Show and
Tell) or flattens it into annotation vectors (Show, Attend and Tell). Both tasks build, initialise, freeze and
transfer it the same way, so a classifier's backbone is a captioner's encoder by loading the same module.
"""

import inspect
from dataclasses import dataclass, field
from pathlib import Path

import torch
from jsonargparse.typing import ClosedUnitInterval, PositiveFloat, PositiveInt
from torch import nn

from vlc.checkpoints import classifier_backbone
from vlc.errors import UserError, given
from vlc.images import resize
from vlc.models.airbench import PatchWhitening, airbench_net
from vlc.models.cnn import residual_cnn
from vlc.models.memory_format import to_channels_last
from vlc.models.torchvision_body import build_torchvision, torchvision_body

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = INCEPTION_STD = (0.5, 0.5, 0.5)  # torchvision's inception_v3 weights expect [-1, 1] inputs


def matches(name: str, prefix: str) -> bool:
    """Whether the dotted ``name`` is ``prefix`` or lies under it."""
    return name == prefix or name.startswith(prefix + ".")


def few(names: list[str], k: int = 4) -> str:
    """The first ``k`` names, and how many more there are."""
    shown = ", ".join(names[:k])
    return shown + (f", ... ({len(names) - k} more)" if len(names) > k else "")


@dataclass
class LoadReport:
    """What :meth:`ImageBackbone.load_classifier_checkpoint` did, tensor by tensor."""

    source: str
    loaded: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A few readable lines: counts and the first names of each kind."""
        lines = [f"init_from {self.source}:"]
        for label, names in (
            ("loaded", self.loaded),
            ("new (random init)", self.new),
            ("shape mismatch (random init)", self.mismatched),
        ):
            lines.append(f"  {label}: {len(names)}" + (f" - {few(names)}" if names else ""))
        return "\n".join(lines)


class ImageBackbone(nn.Module):
    """A CNN body that maps uint8 images ``(B, 3, H, W)`` to a feature grid ``(B, num_features, h, w)``.

    The backbone owns its preprocessing: one resize (bilinear, antialiased) to ``image_size`` and one
    normalisation, held in persistent buffers, so a checkpoint always feeds its network what it was trained on.
    Pre-trained ``weights`` are not read here: the task loads them (:meth:`load_pretrained`) when it starts
    fitting from scratch, so a checkpoint never needs the weights file again; nor are the statistics of the training
    data that some layers are computed from (airbench's whitening stem): the task passes a sample of the training
    images to :meth:`init_from_data` at the same moment.

    Args:
        name: ``cnn`` (vlc's residual CNN), ``airbench`` (Jordan 2024, for 32 px images, 64 px with ``stem_stride:
            2``: ``vlc.models.airbench``) or a torchvision classifier such as ``resnet18``, ``resnet50`` (224 px) or
            ``inception_v3`` (299 px), cut before its global average pooling.
        weights: torchvision networks only: a weights name (``DEFAULT``, ``IMAGENET1K_V2``; downloaded once when
            online) or the path of a local state dict (offline machines); ``null`` for random weights.
        image_size: every input is resized to ``image_size x image_size`` first (``null``: used as given).
        mean: per-channel mean of the normalisation (0-1 scale); ``null``: ImageNet's (inception_v3: 0.5).
        std: per-channel standard deviation of the normalisation; ``null`` as for ``mean``.
        widths: ``cnn`` and ``airbench``: channels of each stage (the grid has ``widths[-1]`` channels; airbench:
            ``[64, 256, 256]``).
        depths: ``cnn`` only: residual blocks per stage.
        stem_width: ``cnn`` only: channels of the stem convolution.
        batch_norm: ``cnn`` only: batch normalisation after every convolution.
        channels_last: run the convolutions in channels-last memory format (faster on CPUs and tensor cores), except
            the few that a oneDNN bug breaks in that layout (``vlc.models.memory_format``).
        whiten: ``airbench`` only: its 2x2 stem whitens image patches, its filters computed from training images
            (:meth:`init_from_data`) and then fixed; ``false``: an ordinary trained convolution of the same shape.
        identity_init: ``airbench`` only: the first ``in_channels`` filters of every 3x3 convolution start as the
            identity.
        bn_momentum: ``airbench`` only: momentum of the batch norms' running statistics, torch's convention
            (airbench: 0.4).
        bn_eps: ``airbench`` only: the batch norms' ``eps`` (airbench: 1e-12).
        bn_scale: ``airbench`` only: learn the batch norms' scale; ``false``: fixed at 1, only the bias is learnt
            (airbench).
        stem_stride: ``airbench`` only: step of its 2x2 stem; 1 (airbench, 32 px images) or 2 (non-overlapping
            patches: 64 px images cost what 32 px ones cost, and a checkpoint fits either setting).
    """

    def __init__(
        self,
        name: str = "cnn",
        weights: str | None = None,
        image_size: PositiveInt | None = None,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
        widths: list[int] = [32, 64, 128, 256],  # noqa: B006 (jsonargparse needs a visible default)
        depths: int | list[int] = 1,
        stem_width: int = 32,
        batch_norm: bool = True,
        channels_last: bool = True,
        whiten: bool = False,
        identity_init: bool = False,
        bn_momentum: ClosedUnitInterval = 0.1,
        bn_eps: PositiveFloat = 1e-5,
        bn_scale: bool = True,
        stem_stride: PositiveInt = 1,
    ) -> None:
        super().__init__()
        self.name, self.weights = name, given(weights)
        self.image_size, self.channels_last = image_size, channels_last
        if name in ("cnn", "airbench") and self.weights is not None:
            raise UserError(f"backbone weights apply to torchvision networks; for {name} use model.init_from")
        options = dict(
            whiten=whiten,
            identity_init=identity_init,
            bn_momentum=bn_momentum,
            bn_eps=bn_eps,
            bn_scale=bn_scale,
            stem_stride=stem_stride,
        )
        if name != "airbench" and (changed := _non_default(options)):
            raise UserError(f"backbone {', '.join(changed)}: options of the airbench network only, not of {name}")
        if name == "cnn":
            self.body, self.num_features = residual_cnn(widths, depths, stem_width, batch_norm), widths[-1]
        elif name == "airbench":
            self.body, self.num_features = airbench_net(widths, **options), widths[-1]
        else:
            self.body = torchvision_body(name)
            self.num_features = self._probe_channels()
        default_mean, default_std = (
            (INCEPTION_MEAN, INCEPTION_STD) if name == "inception_v3" else (IMAGENET_MEAN, IMAGENET_STD)
        )
        # persistent: the normalisation travels in the checkpoint with the weights (and with init_from)
        self.register_buffer("mean", torch.tensor(mean or default_mean, dtype=torch.float32).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(std or default_std, dtype=torch.float32).view(1, 3, 1, 1) * 255)
        if channels_last:
            self.body = to_channels_last(self.body)
        self.frozen_batch_norms: list[nn.Module] = []

    @torch.no_grad()
    def _probe_channels(self) -> int:
        """Channels of the grid, from one small forward pass in eval mode (75 px suits inception_v3)."""
        channels = self.body.eval()(torch.zeros(1, 3, 75, 75)).shape[1]
        self.body.train()
        return channels

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """The network's input: a uint8 (or 0-255 float) batch ``(B, 3, H, W)`` resized and normalised."""
        x = images.float()
        if self.image_size is not None and tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            x = resize(x, self.image_size)
        return (x - self.mean) / self.std

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """Feature grid ``(B, C, h, w)`` of a uint8 (or 0-255 float) batch ``(B, 3, H, W)``."""
        x = self.preprocess(images)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.body(x)  # (B, 3, S, S) -> (B, C, h, w)

    forward = forward_features

    # -- initialisation ------------------------------------------------------------------------------------------
    def load_pretrained(self) -> str | None:
        """Load the torchvision ``weights`` into the body; what was loaded, or None without weights.

        Raises:
            UserError: weights that are neither a weights name nor a fitting state-dict file, or that cannot be
                downloaded (offline: at once, saying how to pass a local file).
        """
        if self.weights is None:
            return None
        full = build_torchvision(self.name, self.weights).state_dict()
        self.body.load_state_dict({k: full[k] for k in self.body.state_dict()})
        return f"backbone: {self.name} weights {self.weights}"

    @property
    def whitening(self) -> PatchWhitening | None:
        """The layer computed from training data (airbench's whitening stem), or None."""
        return next((m for m in self.body.modules() if isinstance(m, PatchWhitening)), None)

    @torch.no_grad()
    def init_from_data(self, images: torch.Tensor) -> str | None:
        """Compute the layers that are statistics of the training data from ``images``; what was done, or None.

        ``images``: a sample of training images, uint8 ``(N, 3, H, W)``, preprocessed here as :meth:`forward` does.
        The whitening stem (the body's first layer) gets the whitening filters of their 2x2 patches; they are
        buffers, so checkpoints carry them. None when the backbone has no such layer.
        """
        layer = self.whitening
        if layer is None:
            return None
        layer.fit(self.preprocess(images.to(self.mean.device)))
        return f"backbone: whitening stem fitted to the 2x2 patches of {len(images):,} training images"

    def load_classifier_checkpoint(self, path: str | Path, key: str = "model.init_from") -> LoadReport:
        """Copy in the backbone tensors of a vlc classification checkpoint whose names and shapes fit.

        The normalisation comes with the weights. Tensors of another shape keep their initialisation and are
        listed in the report, as are those the checkpoint lacks.

        Raises:
            UserError: ``path`` is not a vlc classification checkpoint, or none of its tensors fit.
        """
        source, own = classifier_backbone(path, key), self.state_dict()
        fitting = {k: v for k, v in source.items() if k in own and v.shape == own[k].shape}
        report = LoadReport(str(path), loaded=list(fitting), new=[k for k in own if k not in source])
        report.mismatched = [
            f"{k} {tuple(v.shape)} -> {tuple(own[k].shape)}" for k, v in source.items() if k in own and k not in fitting
        ]
        if not set(fitting) - {"mean", "std"}:
            raise UserError(
                f"{key}: none of the {len(source)} backbone tensors of {path} fit this backbone "
                f"(another network? e.g. {(report.mismatched or report.new)[:1]}); set the backbone's name, "
                "widths, depths and stem_width to those it was trained with"
            )
        self.load_state_dict(fitting, strict=False)
        return report

    # -- freezing -------------------------------------------------------------------------------------------------
    def freeze(self, spec: str | list[str | int]) -> None:
        """Freeze exactly the layers ``spec`` names (the others train); frozen batch norms stay in eval mode.

        Each call replaces the previous one's choice, so a task can freeze everything for a while and then
        release the layers it fine-tunes.

        Args:
            spec: ``none``; ``all``; ``blocks:N`` (the first N children of the body: for ``cnn`` the stem and
                the first N-1 blocks); or a list of layer names of the body such as ``[0, 1]`` or ``[conv1,
                layer1]`` (dotted names reach deeper, e.g. ``layer4.0``).

        Raises:
            UserError: ``spec`` names nothing in the body.
        """
        prefixes = self._frozen_prefixes(spec)
        for name, param in self.body.named_parameters():
            param.requires_grad_(not any(matches(name, p) for p in prefixes))
        frozen = [m for n, m in self.body.named_modules() if any(matches(n, p) for p in prefixes)]
        self.frozen_batch_norms = [m for m in frozen if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        self.train(self.training)

    def _frozen_prefixes(self, spec: str | list[str | int]) -> list[str]:
        children = [name for name, _ in self.body.named_children()]
        if spec == "none":
            return []
        if spec == "all":
            return children
        if isinstance(spec, str) and spec.startswith("blocks:"):
            count = spec.split(":", 1)[1].strip()
            if not count.isdigit() or int(count) > len(children):
                raise UserError(
                    f"model.freeze: {spec!r} must be 'blocks:N' with N in 0..{len(children)}, the number of "
                    f"layers of the backbone ({few(children, 8)})"
                )
            return children[: int(count)]
        names = [name for name, _ in self.body.named_parameters()]
        prefixes = [str(name) for name in ([spec] if isinstance(spec, str) else spec)]
        for prefix in prefixes:
            if not any(matches(name, prefix) for name in names):
                raise UserError(
                    f"model.freeze: {prefix!r} matches no layer of the backbone; use none, all, blocks:N or "
                    f"names of its layers such as {few(children, 8)}"
                )
        return prefixes

    def train(self, mode: bool = True) -> "ImageBackbone":
        """Set training mode, except for frozen batch norms: they stay in eval mode."""
        super().train(mode)
        for module in self.frozen_batch_norms:
            module.eval()
        return self


def _non_default(values: dict) -> list[str]:
    """The names in ``values`` whose value differs from its default in :class:`ImageBackbone`."""
    parameters = inspect.signature(ImageBackbone.__init__).parameters
    return [name for name, value in values.items() if value != parameters[name].default]
