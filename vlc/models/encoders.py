"""Image encoders for captioning: a CNN body that maps uint8 images to a spatial feature grid.

The encoder owns its preprocessing (resizing to ``image_size``, scaling and normalisation, stored as buffers in
the checkpoint), so that training, evaluation and prediction always feed the network the same input. The
captioner pools the grid into one vector for the LSTM decoder or flattens it into annotation vectors for the
attention decoder.
"""

from collections import OrderedDict

import torch
import torch.nn.functional as F
from jsonargparse.typing import PositiveInt
from torch import nn

from vlc.checkpoints import classifier_features
from vlc.errors import UserError, given
from vlc.models.cnn import ResidualCNN
from vlc.models.torchvision_net import build_torchvision

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = INCEPTION_STD = (0.5, 0.5, 0.5)  # torchvision's inception_v3 weights expect [-1, 1] inputs


def torchvision_body(name: str, weights: str | None) -> nn.Sequential:
    """The layers of a torchvision classifier up to (not including) its global average pooling.

    Children keep their torchvision names (``conv1``, ``layer4``, ``Mixed_7c``), so a state dict of the full
    model (or of a vlc ``TorchvisionNet``'s ``features``) loads into the body by name.

    Raises:
        UserError: unknown name, weights that cannot be loaded (offline: a clear message, no hang), or a model
            without an ``AdaptiveAvgPool2d`` child.
    """
    model = build_torchvision(name, weights)
    layers = OrderedDict()
    for child_name, child in model.named_children():
        if isinstance(child, nn.AdaptiveAvgPool2d):
            return nn.Sequential(layers)
        layers[child_name] = child
    raise UserError(f"torchvision {name}: no global average pooling layer to cut at; use e.g. resnet50 or inception_v3")


def cnn_body(widths: list[int], depths: int | list[int], stem_width: int, batch_norm: bool) -> nn.Sequential:
    """The layers of vlc's ``ResidualCNN`` before pooling (keys ``0.*, 1.*, ...`` as in its ``features``)."""
    net = ResidualCNN(1, widths=widths, depths=depths, stem_width=stem_width, batch_norm=batch_norm)
    return net.features[:-2]  # drop AdaptiveAvgPool2d and Flatten


class ImageEncoder(nn.Module):
    """A CNN that maps uint8 images ``(B, 3, H, W)`` to a feature grid ``(B, C, h, w)``.

    Args:
        backbone: ``cnn`` (vlc's ``ResidualCNN``) or a torchvision classifier such as ``resnet50`` (224 px) or
            ``inception_v3`` (299 px); torchvision bodies are cut before their global average pooling, so
            pooling the grid gives the usual 2048-d feature of both.
        weights: for torchvision backbones: a weights name (``DEFAULT``, ``IMAGENET1K_V2``; downloaded once
            when online) or the path of a local state dict (offline machines); ``null`` for random weights.
        image_size: every input is resized to ``image_size x image_size`` first (``null``: used as given).
        widths: ``cnn`` only: channels of each stage (the grid has ``widths[-1]`` channels).
        depths: ``cnn`` only: residual blocks per stage.
        stem_width: ``cnn`` only: channels of the stem convolution.
        batch_norm: ``cnn`` only: batch normalisation after every convolution.
        init_from: a vlc classification checkpoint (``vlc fit`` of an ``ImageClassifier``) whose network has
            this same backbone: its feature layers (and its normalisation) initialise the encoder; its head is
            dropped. Only read when training starts: a captioning checkpoint holds the encoder's weights.
        channels_last: run the convolutions in channels-last memory format (faster on CPUs).
    """

    def __init__(
        self,
        backbone: str = "cnn",
        weights: str | None = None,
        image_size: PositiveInt | None = None,
        widths: list[int] = [32, 64, 128, 256],  # noqa: B006 (jsonargparse needs a visible default)
        depths: int | list[int] = 1,
        stem_width: int = 32,
        batch_norm: bool = True,
        init_from: str | None = None,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        weights, init_from = given(weights), given(init_from)
        if backbone == "cnn":
            if weights is not None:
                raise UserError("encoder.weights applies to torchvision backbones; for cnn use encoder.init_from")
            self.body = cnn_body(widths, depths, stem_width, batch_norm)
        else:
            self.body = torchvision_body(backbone, weights)
        mean, std = (INCEPTION_MEAN, INCEPTION_STD) if backbone == "inception_v3" else (IMAGENET_MEAN, IMAGENET_STD)
        if init_from is not None:
            mean, std = self._load_classifier(init_from)
        # persistent: the normalisation travels in the checkpoint with the weights
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255)
        self.backbone, self.image_size, self.channels_last = backbone, image_size, channels_last
        if channels_last:
            self.body = self.body.to(memory_format=torch.channels_last)
        self.num_features = self._probe_channels()

    def _load_classifier(self, path: str) -> tuple[tuple, tuple]:
        features, hparams = classifier_features(path, "encoder.init_from")
        state = {k.removeprefix("features."): v for k, v in features.items()}
        own = self.body.state_dict()
        wrong = [k for k in own if k not in state or state[k].shape != own[k].shape]
        if wrong:
            net = hparams.get("net", "?")
            raise UserError(
                f"encoder.init_from: the network of {path} does not match this encoder ({len(wrong)} of {len(own)} "
                f"tensors missing or of another shape, e.g. {wrong[0]}); its network is {net}: set the encoder's "
                "backbone/widths/depths/stem_width to the same values"
            )
        self.body.load_state_dict({k: state[k] for k in own})
        return tuple(hparams.get("mean", IMAGENET_MEAN)), tuple(hparams.get("std", IMAGENET_STD))

    @torch.no_grad()
    def _probe_channels(self) -> int:
        """Channels of the grid, from one small forward pass (in eval mode, so batch norm statistics stay put)."""
        was_training = self.body.training
        size = 32 if self.backbone == "cnn" else 75  # channels do not depend on the size; 75 px suits inception_v3
        out = self.body.eval()(torch.zeros(1, 3, size, size).contiguous(memory_format=torch.channels_last))
        self.body.train(was_training)
        return out.shape[1]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Feature grid ``(B, C, h, w)`` of a uint8 (or 0-255 float) batch ``(B, 3, H, W)``."""
        x = images.float()
        if self.image_size is not None and tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size,) * 2, mode="bilinear", antialias=True, align_corners=False)
        x = (x - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.body(x)  # (B, 3, S, S) -> (B, C, h, w)
