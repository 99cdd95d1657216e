"""torchvision classification networks by name: their bodies (cut before the pooling) and their weights."""

from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from vlc.errors import UserError, given
from vlc.models.backbone import ImageBackbone

INCEPTION_MEAN = INCEPTION_STD = (0.5, 0.5, 0.5)  # torchvision's inception_v3 weights expect [-1, 1] inputs


def load_weights(model: nn.Module, name: str, weights: str) -> None:
    """Load ``weights`` (a local state-dict file or a torchvision weights name such as ``DEFAULT``) into ``model``.

    A weights name is resolved by torchvision, which downloads the file once into ``$TORCH_HOME``. Offline,
    this stops at once with a message saying how to supply a local file instead.
    """
    path = Path(weights).expanduser()
    if path.suffix in (".pt", ".pth", ".bin") or path.exists():
        if not path.is_file():
            raise UserError(f"weights: {path} does not exist; expected a state dict saved with torch.save")
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        return load_state(model, name, state, str(path))
    try:
        enum = torchvision.models.get_model_weights(name)
        resolved = enum.DEFAULT if weights == "DEFAULT" else enum[weights.split(".")[-1]]
    except (KeyError, ValueError):
        raise UserError(f"weights: {weights!r} is neither a file nor a weights name of {name}") from None
    try:
        state = resolved.get_state_dict(progress=False, check_hash=True)
    except Exception as err:  # URLError, HTTPError, socket errors: the message is what matters
        raise UserError(
            f"could not download the {resolved} weights ({type(err).__name__}: {err}). This machine looks offline: "
            f"download {resolved.url} on a machine that is online and pass the file as weights: /path/to/file.pth"
        ) from None
    load_state(model, name, state, str(resolved))


def load_state(model: nn.Module, name: str, state: dict, source: str) -> None:
    """Load a complete torchvision ``state`` into ``model``; anything missing or extra is an error naming ``source``.

    InceptionV3's auxiliary classifier (``AuxLogits.*``, in torchvision's weights) is dropped: vlc builds it without.
    """
    own = model.state_dict()
    state = {k: v for k, v in state.items() if not k.startswith("AuxLogits.") or k in own}
    missing = [k for k in own if k not in state]
    wrong = [k for k in state if k not in own or state[k].shape != own[k].shape]
    if missing or wrong:
        raise UserError(
            f"weights: {source} is not a torchvision {name} state dict: {len(missing)} of its tensors missing "
            f"(e.g. {missing[:3]}), {len(wrong)} unknown or of another shape (e.g. {wrong[:3]})"
        )
    model.load_state_dict(state)


def build_torchvision(name: str, weights: str | None = None) -> nn.Module:
    """A torchvision classification model (1000-class head), with ``weights`` loaded when given."""
    if name not in torchvision.models.list_models(module=torchvision.models):
        raise UserError(f"unknown torchvision model {name!r}; e.g. resnet18, resnet50, inception_v3")
    kwargs = {"aux_logits": False, "init_weights": False} if name == "inception_v3" else {}
    model = torchvision.models.get_model(name, weights=None, **kwargs)
    if given(weights) is not None:
        load_weights(model, name, weights)
    return model


def torchvision_body(name: str) -> nn.Sequential:
    """The layers of a torchvision classifier (random weights) up to, not including, its global average pooling.

    Children keep their torchvision names (``conv1``, ``layer4``, ``Mixed_7c``), so the state dict of the full model
    loads into the body by name.

    Raises:
        UserError: an unknown name, or a model without an ``AdaptiveAvgPool2d`` child to cut at.
    """
    layers = OrderedDict()
    for child_name, child in build_torchvision(name).named_children():
        if isinstance(child, nn.AdaptiveAvgPool2d):
            return nn.Sequential(layers)
        layers[child_name] = child
    raise UserError(f"torchvision {name}: no global average pooling layer to cut at; use e.g. resnet50 or inception_v3")


@torch.no_grad()
def probe_channels(body: nn.Module) -> int:
    """Channels of ``body``'s grid, from one small forward pass in eval mode (75 px suits inception_v3)."""
    channels = body.eval()(torch.zeros(1, 3, 75, 75)).shape[1]
    body.train()
    return channels


class TorchvisionBackbone(ImageBackbone):
    """A torchvision classifier cut before its global average pooling, with its pre-trained weights if asked.

    In a config: ``class_path: vlc.models.TorchvisionBackbone`` with ``name``. The body's children keep their
    torchvision names (``conv1``, ``layer4``, ``Mixed_7c``), as :meth:`ImageBackbone.freeze` names them.

    Args:
        name: a torchvision classification model, e.g. ``resnet18``, ``resnet50`` (224 px) or ``inception_v3``
            (299 px).
        weights: a weights name (``DEFAULT``, ``IMAGENET1K_V2``; downloaded once when online) or the path of a local
            state dict (offline machines); ``null`` for random weights. Read by :meth:`load_pretrained`.
        mean: per-channel mean of the normalisation (0-1 scale); ``null``: ImageNet's (inception_v3: 0.5).
        std: per-channel standard deviation of the normalisation; ``null`` as for ``mean``.
        **kwargs: the rest of :class:`ImageBackbone`'s preprocessing (``image_size``, ``channels_last``).
    """

    def __init__(
        self,
        name: str,
        weights: str | None = None,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if name == "inception_v3":
            mean, std = mean or INCEPTION_MEAN, std or INCEPTION_STD
        body = torchvision_body(name)
        super().__init__(body, probe_channels(body), mean=mean, std=std, **kwargs)
        self.name, self.weights = name, given(weights)

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
