"""An experiment's hyper-parameters (the HParams tab), parameter counts for comparing runs, plain checkpoint values."""

import dataclasses
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger

from vlc.errors import warn

NOT_HPARAMS = ("_class_path", "_instantiator")
"""Keys LightningCLI adds to a module's hyper-parameters (how to rebuild it), which are no settings to compare."""

NOT_SETTINGS = {
    # how torch runs an optimizer or a schedule, not what it does
    "foreach", "fused", "differentiable", "maximize", "capturable", "last_epoch", "verbose",
    # where the data lies and how it is loaded: paths differ between machines, the numbers do not change
    "root", "images_dir", "captions_file", "test_labels", "predict_dir", "vocab_file", "num_workers", "cache",
    "bad_images", "max_bad_fraction", "max_image_pixels",
    # evaluation and prediction outputs, and the feature cache (the same numbers, faster)
    "top_k", "roc_thresholds", "scoring", "feature_cache",
}  # fmt: skip
"""Config keys that are not hyper-parameters of an experiment: the HParams tab leaves them out."""

TRAINER_SETTINGS = ("max_epochs", "max_steps", "max_time", "precision", "accumulate_grad_batches", "gradient_clip_val")
"""The Trainer arguments that are hyper-parameters (how long and how precisely it trains)."""


def experiment_hparams(config: Any) -> dict[str, Any]:
    """The hyper-parameters of an experiment's resolved config, flat, as TensorBoard's HParams tab lists them.

    Keys are the config's dotted command-line names without ``init_args`` (``model.optimizer.lr``,
    ``data.batch_size``, ``trainer.max_epochs``, ``seed_everything``); a ``class_path`` is its class's name under its
    own key (``model.backbone: ResidualCNN``). Unset values (``None``, ``max_steps: -1``), :data:`NOT_SETTINGS` and
    every Trainer argument but :data:`TRAINER_SETTINGS` are left out; lists become their text (``[8, 16]``).

    Args:
        config: the subcommand's config (a dict or a jsonargparse ``Namespace``) with ``model``, ``data``,
            ``trainer`` and ``seed_everything``.
    """
    config = config.as_dict() if hasattr(config, "as_dict") else config  # a jsonargparse Namespace
    flat: dict[str, Any] = {}
    for section in ("model", "data"):
        _flatten(flat, section, config.get(section))
    trainer = config.get("trainer") or {}
    for key in TRAINER_SETTINGS:
        flat[f"trainer.{key}"] = None if key == "max_steps" and trainer.get(key) == -1 else trainer.get(key)
    flat["seed_everything"] = config.get("seed_everything")
    return {key: value if isinstance(value, (bool, int, float, str)) else str(value) for key, value in flat.items()
            if value is not None}  # fmt: skip


def _flatten(flat: dict[str, Any], key: str, value: Any) -> None:
    if isinstance(value, Mapping) and "class_path" in value:
        flat[key] = str(value["class_path"]).rsplit(".", 1)[-1]
        value = value.get("init_args") or {}
    if isinstance(value, Mapping):
        for name, item in value.items():
            if name not in NOT_SETTINGS and name not in NOT_HPARAMS:
                _flatten(flat, f"{key}.{name}", item)
    else:
        flat[key] = plain(value)


def log_final_hparams(trainer: L.Trainer, hparams: Mapping) -> None:
    """Log ``hparams`` with ``hp/<val metric>`` (last values) and ``hp/best_<monitor>`` to every logger of the run.

    TensorBoard gets them together (its HParams tab); the other loggers take the hyper-parameters alone, and the
    scores as metrics at the last step.
    """
    val = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    scores = {f"hp/{k.replace('/', '_')}": float(v) for k, v in val.items()}
    checkpoint = trainer.checkpoint_callback
    if checkpoint is not None and checkpoint.best_model_score is not None:
        scores[f"hp/best_{checkpoint.monitor.replace('/', '_')}"] = float(checkpoint.best_model_score)
    if not scores:
        return
    hparams = {key: value for key, value in hparams.items() if key not in NOT_HPARAMS}
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(hparams, scores)
            continue
        if isinstance(logger, MLFlowLogger):
            _mlflow_hyperparams(logger, hparams)
        else:
            logger.log_hyperparams(hparams)
        logger.log_metrics(scores, step=trainer.global_step)


def _mlflow_hyperparams(logger: MLFlowLogger, hparams: Mapping) -> None:
    """Log ``hparams`` to MLflow, which keeps a run's first values: a resumed run that changed one is told so."""
    from mlflow.exceptions import MlflowException

    try:
        logger.log_hyperparams(hparams)
    except MlflowException as err:  # "Changing param values is not allowed" (trainer.max_epochs raised on resume)
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        warn(f"MLflow kept this run's first hyper-parameters, not the resumed session's ({first})")


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
