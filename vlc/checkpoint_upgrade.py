"""Checkpoints of earlier vlc versions, converted on load to the current layout (hyper-parameters and weights).

Before the one-backbone redesign a classifier held ``net`` (``ResidualCNN`` or ``TorchvisionNet``: ``net.features``
and ``net.head``) and its normalisation as hyper-parameters; a captioner held an ``ImageEncoder`` and a decoder named
by a string with flat decoder arguments. Before the backbone families, both held one ``ImageBackbone`` whose
``name`` chose the network, with the union of every family's options, and a captioner's decoding and scoring
options were flat arguments (``decoding: beam``, ``beam_width: 5``, ``meteor: false``, ...). Every reader of a
checkpoint (the CLI, ``init_from``, Lightning's own restore through the tasks' ``on_load_checkpoint``) calls
:func:`upgrade`, which does nothing to a current one.
"""

from typing import Any

import torch

TASK_KEY = "vlc_task"
"""Where a checkpoint records the task that wrote it: ``{"class_path": ..., "kind": classification|captioning}``."""

BACKBONE = "vlc.models.ImageBackbone"
"""The class of both tasks' backbones before the families, chosen by ``name``."""
PREPROCESSING = ("image_size", "mean", "std", "channels_last")
"""``ImageBackbone`` options that every family keeps."""
OLD_FAMILIES = {  # name -> the family's class and its options with the defaults the old ImageBackbone gave them
    "cnn": (
        "vlc.models.ResidualCNN",
        {"widths": [32, 64, 128, 256], "depths": 1, "stem_width": 32, "batch_norm": True},
    ),
    "airbench": (
        "vlc.models.AirbenchNet",
        {
            "widths": [32, 64, 128, 256],
            "whiten": False,
            "identity_init": False,
            "bn_momentum": 0.1,
            "bn_eps": 1e-5,
            "bn_scale": True,
            "stem_stride": 1,
            "whiten_bias_epochs": None,
        },
    ),
}
LATER_OPTIONS = {"vlc.models.AirbenchNet": {"whiten_bias_epochs": None}}
"""Options a family gained after its first checkpoints, with the value that gives those checkpoints' behaviour."""
TORCHVISION = ("vlc.models.TorchvisionBackbone", {"name": None, "weights": None})
"""Any other ``name`` (always given then): a torchvision network."""
DECODING = ("beam_width", "max_len", "length_penalty", "min_len", "no_repeat_ngram", "banned_endings", "num_captions")
"""The flat arguments that are now fields of the captioner's ``decoding`` (with ``decoding`` itself: ``strategy``)."""
SCORING = ("tokenizer", "meteor", "num_samples", "baselines")
"""The flat arguments that are now fields of the captioner's ``scoring``."""
STORED_GLOVE = "(GloVe vectors stored in the checkpoint)"
"""The ``glove_path`` of an older checkpoint that holds its GloVe vectors (never read: a checkpoint's are loaded)."""


def upgrade(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """Convert ``checkpoint`` in place to the current layout; return it."""
    hparams = checkpoint.get("hyper_parameters")
    if not isinstance(hparams, dict):
        return checkpoint
    if TASK_KEY not in checkpoint and ("vocab" in hparams or "num_classes" in hparams):
        _record_task(checkpoint, hparams)
    if isinstance(hparams.get("net"), dict):
        _upgrade_classifier(hparams, checkpoint["state_dict"])
    if isinstance(hparams.get("encoder"), dict) and hparams["encoder"].get("class_path") == "vlc.models.ImageEncoder":
        _upgrade_encoder(hparams)
    for key in ("backbone", "encoder"):
        if isinstance(hparams.get(key), dict) and hparams[key].get("class_path") == BACKBONE:
            hparams[key] = _upgrade_backbone(hparams[key].get("init_args") or {})
        if isinstance(hparams.get(key), dict) and hparams[key].get("class_path") in LATER_OPTIONS:
            init_args = hparams[key].setdefault("init_args", {})
            for option, value in LATER_OPTIONS[hparams[key]["class_path"]].items():
                init_args.setdefault(option, value)
    if isinstance(hparams.get("decoder"), str):
        _upgrade_decoder(hparams)
    if isinstance(hparams.get("decoding"), str):  # every older captioner saved it (default greedy)
        _upgrade_options(hparams)
    if "glove" in checkpoint:  # the GloVe vectors caption cosine scores with: now a buffer of the captioner
        checkpoint["state_dict"]["glove"] = checkpoint.pop("glove")
        hparams["glove_path"] = hparams.get("glove_path") or STORED_GLOVE
    return checkpoint


def _record_task(checkpoint: dict, hparams: dict) -> None:
    """The task of a checkpoint written before vlc recorded it: a vocabulary means a captioner."""
    captioner = "vocab" in hparams
    checkpoint[TASK_KEY] = {
        "class_path": hparams.get("_class_path")
        or ("vlc.tasks.ImageCaptioner" if captioner else "vlc.tasks.ImageClassifier"),
        "kind": "captioning" if captioner else "classification",
    }


def _upgrade_classifier(hparams: dict, state: dict) -> None:
    """``net`` (features + head) and ``mean``/``std``/``channels_last`` -> ``backbone`` + ``dropout``; ``head``."""
    net = hparams.pop("net")
    args = dict(net.get("init_args") or {})
    mean, std = hparams.pop("mean", None), hparams.pop("std", None)
    backbone = {"mean": mean, "std": std, "channels_last": hparams.pop("channels_last", True)}
    if net.get("class_path", "").endswith("TorchvisionNet"):
        backbone.update(
            name=args.get("name", "resnet18"), weights=args.get("weights"), image_size=args.get("input_size")
        )
    else:
        backbone.update({k: args[k] for k in ("widths", "depths", "stem_width", "batch_norm") if k in args}, name="cnn")
    hparams["backbone"] = {"class_path": BACKBONE, "init_args": backbone}
    hparams["dropout"] = args.get("dropout", 0.0)
    freeze = hparams.get("freeze", "none")
    if freeze == "features":
        hparams["freeze"] = "all"
    elif isinstance(freeze, (list, tuple)):
        hparams["freeze"] = [str(name).removeprefix("net.").removeprefix("features.") for name in freeze]
    for key in [k for k in state if k.startswith("net.")]:
        tensor = state.pop(key)
        if key.startswith("net.features."):
            state["backbone.body." + key.removeprefix("net.features.")] = tensor
        else:  # net.head.1.weight: the head's Linear after its Dropout
            state["head." + key.rsplit(".", 1)[-1]] = tensor
    for name, values in (("mean", mean), ("std", std)):
        if values is not None:
            state[f"backbone.{name}"] = torch.tensor(values, dtype=torch.float32).view(1, 3, 1, 1) * 255


def _upgrade_encoder(hparams: dict) -> None:
    """``ImageEncoder(backbone=..., init_from=...)`` -> ``ImageBackbone(name=...)`` (its tensors keep their names)."""
    args = dict(hparams["encoder"].get("init_args") or {})
    args["name"] = args.pop("backbone", "cnn")
    args.pop("init_from", None)
    hparams["encoder"] = {"class_path": BACKBONE, "init_args": args}


def _upgrade_backbone(args: dict) -> dict:
    """``ImageBackbone(name=..., <every family's options>)`` -> the family's ``{class_path, init_args}``.

    Options of other families were at their defaults (the old class refused others) and are dropped; the family's
    options missing from ``args`` take the old class's defaults (not the family's own), so the network is the same.
    """
    class_path, options = OLD_FAMILIES.get(args.get("name", "cnn"), TORCHVISION)
    init_args = {**options, **{k: v for k, v in args.items() if k in options or k in PREPROCESSING}}
    return {"class_path": class_path, "init_args": init_args}


def _upgrade_decoder(hparams: dict) -> None:
    """``decoder: lstm|attention`` with flat arguments -> ``decoder: {class_path, init_args}``."""
    kind = hparams.pop("decoder")
    args = {k: hparams.pop(k) for k in ("embed_dim", "hidden_dim", "dropout") if k in hparams}
    num_layers, attention_dim = hparams.pop("num_layers", 1), hparams.pop("attention_dim", 256)
    if kind == "attention":
        args.update(attention_dim=attention_dim, penalty=hparams.pop("attention_penalty", 1.0))
        hparams["decoder"] = {"class_path": "vlc.models.AttentionLSTMDecoder", "init_args": args}
    else:
        args["num_layers"] = num_layers
        hparams.pop("attention_penalty", None)
        hparams["decoder"] = {"class_path": "vlc.models.LSTMDecoder", "init_args": args}


def _upgrade_options(hparams: dict) -> None:
    """Flat ``decoding: beam``, ``beam_width``, ..., ``meteor``, ... -> ``decoding: {strategy, ...}``, ``scoring``."""
    decoding = {key: hparams.pop(key) for key in DECODING if key in hparams}
    if decoding.get("banned_endings", []) is None:
        decoding["banned_endings"] = []
    decoding["strategy"] = hparams.pop("decoding")
    hparams["decoding"] = decoding
    hparams["scoring"] = {key: hparams.pop(key) for key in SCORING if key in hparams}
