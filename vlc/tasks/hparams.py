"""Hyper-parameters with the final validation scores, for TensorBoard's HPARAMS tab (comparing runs)."""

from collections.abc import Mapping

import lightning as L


def log_final_hparams(module: L.LightningModule, hparams: Mapping) -> None:
    """Log ``hparams`` with ``hp/<val metric>`` (last values) and ``hp/best_<monitor>`` to the module's logger."""
    trainer = module.trainer
    val = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    scores = {f"hp/{k.replace('/', '_')}": float(v) for k, v in val.items()}
    checkpoint = trainer.checkpoint_callback
    if checkpoint is not None and checkpoint.best_model_score is not None:
        scores[f"hp/best_{checkpoint.monitor.replace('/', '_')}"] = float(checkpoint.best_model_score)
    if scores and module.logger is not None:
        module.logger.log_hyperparams(hparams, scores)
