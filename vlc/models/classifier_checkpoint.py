"""Reading the feature layers of a vlc classification checkpoint (transfer learning, caption encoders)."""

from pathlib import Path

import torch

from vlc.errors import UserError


def read_classifier_checkpoint(path: str | Path, key: str, hint: str = "") -> tuple[dict[str, torch.Tensor], dict]:
    """The ``net.features.*`` tensors (keyed relative to ``net``) and the hyper-parameters of a checkpoint.

    Args:
        path: a checkpoint written by ``vlc fit`` of an ``ImageClassifier``.
        key: the config key that named ``path``, for the messages.
        hint: appended to the messages that say the file is not such a checkpoint.

    Raises:
        UserError: the file does not exist, cannot be read, or is not a vlc classification checkpoint.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"{key}: {path} does not exist; expected a vlc classification checkpoint (.ckpt){hint}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and torch errors alike: the file is not a checkpoint
        raise UserError(f"{key}: {path} is not a checkpoint torch can read ({type(err).__name__})") from None
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    hparams = checkpoint.get("hyper_parameters", {}) if isinstance(checkpoint, dict) else {}
    features = {}
    if isinstance(state, dict) and "num_classes" in hparams:
        features = {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.features.")}
    if not features:
        raise UserError(
            f"{key}: {path} is not a vlc classification checkpoint (no net.features.* tensors); "
            f"use a .ckpt written by 'vlc fit' of an image classifier{hint}"
        )
    return features, hparams
