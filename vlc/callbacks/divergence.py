"""Stops a run whose loss is no longer a finite number, before it trains on (and saves) broken weights."""

import lightning as L
import torch

from vlc.errors import Diverged


class StopOnDivergence(L.Callback):
    """Raises :class:`~vlc.errors.Diverged` at the first training step whose loss is NaN or infinite.

    The run stops at once with one line (epoch, step, loss and what to try); the checkpoints written so far are
    kept, and ``vlc.callbacks.Checkpoint`` never writes the broken weights. Under DDP the processes agree, so that
    all of them stop.
    """

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        broken = isinstance(loss, torch.Tensor) and not bool(torch.isfinite(loss.detach()).all())
        if trainer.strategy.reduce_boolean_decision(broken, all=False):  # every process stops at the same step
            value = loss.float().item() if broken else "not finite in another process"
            raise Diverged(
                f"training diverged at epoch {trainer.current_epoch}, step {trainer.global_step}: the loss is "
                f"{value}; the checkpoints written so far are kept. Try a lower learning rate "
                "(model.init_args.optimizer.init_args.lr, or the scheduler's max_lr) or gradient clipping "
                "(trainer.gradient_clip_val)"
            )
