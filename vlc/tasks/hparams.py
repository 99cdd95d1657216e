"""Hyper-parameters and parameter counts for comparing runs, and plain values for checkpoints."""

import dataclasses
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger

NOT_HPARAMS = ("_class_path", "_instantiator")
"""Keys LightningCLI adds to a module's hyper-parameters (how to rebuild it), which are no settings to compare."""


def log_final_hparams(module: L.LightningModule, hparams: Mapping) -> None:
    """Log ``hparams`` with ``hp/<val metric>`` (last values) and ``hp/best_<monitor>`` to every logger of the run.

    TensorBoard gets them together (its HParams tab); the other loggers take the hyper-parameters alone, and the
    scores as metrics at the last step.
    """
    trainer = module.trainer
    val = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    scores = {f"hp/{k.replace('/', '_')}": float(v) for k, v in val.items()}
    checkpoint = trainer.checkpoint_callback
    if checkpoint is not None and checkpoint.best_model_score is not None:
        scores[f"hp/best_{checkpoint.monitor.replace('/', '_')}"] = float(checkpoint.best_model_score)
    if not scores:
        return
    hparams = {key: value for key, value in hparams.items() if key not in NOT_HPARAMS}
    for logger in module.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(hparams, scores)
        else:
            logger.log_hyperparams(hparams)
            logger.log_metrics(scores, step=trainer.global_step)


def parameter_counts(module: torch.nn.Module) -> tuple[int, int]:
    """Numbers of trainable and frozen parameters (elements, not tensors)."""
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in module.parameters()) - trainable


def log_parameter_counts(module: L.LightningModule, note: str) -> None:
    """Print the trainable and frozen parameter counts and log them once per run (``vlc compare`` reads them)."""
    trainable, frozen = parameter_counts(module)
    if module.trainer.is_global_zero:
        print(f"parameters: {trainable:,} trainable, {frozen:,} frozen ({note})")
    for logger in module.loggers if module.trainer.ckpt_path is None else []:  # a resumed run logged them already
        logger.log_metrics({"params/trainable": trainable, "params/frozen": frozen}, step=0)


def plain(value: Any) -> Any:
    """``value`` with checked numbers (jsonargparse's ``PositiveInt``, ...) made plain ``int``/``float``, nested too.

    Dataclass instances (the captioner's ``decoding`` and ``scoring``) become dicts of their fields.

    Checkpoints then hold only types that ``torch.load(weights_only=True)`` reads.
    """
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value] if isinstance(value, list) else tuple(plain(item) for item in value)
    return value
