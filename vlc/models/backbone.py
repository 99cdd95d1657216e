"""One image backbone for every task: uint8 images in, a feature grid out, preprocessing included.

The classifier puts pooling, dropout and a linear head on top; the captioner pools the grid into one vector (Show and
Tell) or flattens it into annotation vectors (Show, Attend and Tell). Both tasks build, initialise, freeze and
transfer it the same way, so a classifier's backbone is a captioner's encoder by loading the same module. Each
family of networks is a subclass that owns its options (``vlc/models/cnn.py``, ``airbench.py``,
``torchvision_body.py``); this base holds what they share: preprocessing, freezing and loading weights.
"""

from dataclasses import dataclass, field
from pathlib import Path

import torch
from jsonargparse.typing import PositiveInt
from torch import nn

from vlc.checkpoints import classifier_backbone
from vlc.errors import UserError
from vlc.images import resize
from vlc.models.memory_format import to_channels_last

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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

    The base of the backbone families, which build the body from their own options and pass the rest here:
    :class:`~vlc.models.ResidualCNN` (vlc's CNN), :class:`~vlc.models.AirbenchNet` (Jordan 2024) and
    :class:`~vlc.models.TorchvisionBackbone` (resnet18, resnet50, inception_v3...); a config chooses one by its
    ``class_path``. The backbone owns its preprocessing: one resize (bilinear, antialiased) to ``image_size`` and one
    normalisation, held in persistent buffers, so a checkpoint always feeds its network what it was trained on.
    Pre-trained weights are not read here: the task loads them (:meth:`load_pretrained`) when it starts fitting from
    scratch, so a checkpoint never needs the weights file again; nor are the statistics of the training data that
    some layers are computed from (airbench's whitening stem): the task passes a sample of the training images to
    :meth:`init_from_data` at the same moment.

    Args:
        body: the network, ``(B, 3, S, S) -> (B, num_features, h, w)``; its tensors are saved as ``body.*``.
        num_features: channels of the grid.
        image_size: every input is resized to ``image_size x image_size`` first (``null``: used as given).
        mean: per-channel mean of the normalisation (0-1 scale); ``null``: ImageNet's.
        std: per-channel standard deviation of the normalisation; ``null``: ImageNet's.
        channels_last: run the convolutions in channels-last memory format (faster on CPUs and tensor cores), except
            the few that a oneDNN bug breaks in that layout (``vlc.models.memory_format``).
    """

    def __init__(
        self,
        body: nn.Module,
        num_features: int,
        image_size: PositiveInt | None = None,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        self.body = to_channels_last(body) if channels_last else body
        self.num_features, self.image_size, self.channels_last = num_features, image_size, channels_last
        # persistent: the normalisation travels in the checkpoint with the weights (and with init_from)
        self.register_buffer("mean", torch.tensor(mean or IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(std or IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1) * 255)
        self.frozen_batch_norms: list[nn.Module] = []

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

    @property
    def feature_layer(self) -> nn.Module:
        """The layer whose output is the last feature grid with spatial extent (Grad-CAM's layer): here the body.

        A family whose body ends in a pooling that shrinks the grid (airbench's 3x3 max pool: 1x1 at 32 px) names
        the layer before it.
        """
        return self.body

    # -- initialisation ------------------------------------------------------------------------------------------
    def load_pretrained(self) -> str | None:
        """Load the family's pre-trained weights into the body; what was loaded, or None (here: none to load)."""
        return None

    @property
    def whitening(self) -> nn.Module | None:
        """The layer computed from training data (airbench's whitening stem), or None (here: none)."""
        return None

    def init_from_data(self, images: torch.Tensor) -> str | None:
        """Compute the layers that are statistics of the training ``images``; what was done, or None (here: none).

        ``images``: a sample of training images, uint8 ``(N, 3, H, W)``.
        """
        return None

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
                f"(another network? e.g. {(report.mismatched or report.new)[:1]}); set the backbone's class_path "
                "and options (e.g. widths, depths, stem_width) to those it was trained with"
            )
        self.load_state_dict(fitting, strict=False)
        return report

    def resting_parameters(self, epoch: int) -> list[nn.Parameter]:
        """Trainable parameters that ``epoch`` leaves as they are (here: none).

        A family whose recipe trains some layer only for its first epochs (airbench's whitening bias) names it here;
        the task drops their gradients before each optimizer step of that epoch, so that neither the update nor the
        weight decay moves them, as a layer with ``requires_grad`` off (which DDP does not allow mid-run).
        """
        return []

    # -- freezing -------------------------------------------------------------------------------------------------
    def freeze(self, spec: str | list[str | int]) -> None:
        """Freeze exactly the layers ``spec`` names (the others train); frozen batch norms stay in eval mode.

        Each call replaces the previous one's choice, so a task can freeze everything for a while and then
        release the layers it fine-tunes.

        Args:
            spec: ``none``; ``all``; ``blocks:N`` (the first N children of the body: for ``ResidualCNN`` the
                stem and the first N-1 blocks); or a list of layer names of the body such as ``[0, 1]`` or ``[conv1,
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
