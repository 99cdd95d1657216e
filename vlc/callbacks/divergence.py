"""Stops a run whose loss is no longer a finite, sane number, before it trains on (and saves) broken weights."""

import lightning as L
import torch

from vlc.callbacks.checkpoint import finite_state
from vlc.errors import Diverged

ADVICE = (
    "Try a lower learning rate (model.init_args.optimizer.init_args.lr, or the scheduler's max_lr) or gradient "
    "clipping (trainer.gradient_clip_val)"
)


class StopOnDivergence(L.Callback):
    """Raises :class:`~vlc.errors.Diverged` when training has blown up; no checkpoint of the broken weights is written.

    A run has diverged when a training step's loss, or the validation loss, is NaN or infinite or has exploded (grown
    ``explode_factor`` times over its scale at the start: the mean training loss of the first ``reference_steps``
    steps, taken as at least 1), or when the weights are no longer finite after a validation. A cross-entropy that
    large only comes from weights that have blown up (a learning rate far too large), whose validation accuracy
    would otherwise be ranked and kept as ``best``. The run stops at once with one line; the checkpoints written
    before are kept (``vlc.callbacks.Checkpoint`` checks validation before it saves, and never writes weights that
    are not finite). Under DDP the processes agree, so that all of them stop. The scale at the start travels in the
    checkpoint, so a resumed run keeps it.

    Args:
        explode_factor: how many times its scale at the start a loss may grow before the run counts as diverged.
        reference_steps: the first training steps whose mean loss sets that scale.
    """

    def __init__(self, explode_factor: float = 100.0, reference_steps: int = 5) -> None:
        self.explode_factor, self.reference_steps = explode_factor, reference_steps
        self.reference: float | None = None
        self._first: list[float] = []

    def state_dict(self) -> dict:
        return {"reference": self.reference}

    def load_state_dict(self, state_dict: dict) -> None:
        self.reference = state_dict.get("reference")

    def _limit(self) -> float:
        return self.explode_factor * max(self.reference or 1.0, 1.0)

    def _problem(self, value: float) -> str | None:
        """Why a loss ``value`` means divergence, or None."""
        if not torch.isfinite(torch.tensor(value)):
            return f"is {value}"
        if value > self._limit():
            return (
                f"is {value:.4g}, above {self._limit():.4g} ({self.explode_factor:g} times the first steps' "
                "training loss, taken as at least 1)"
            )
        return None

    def _stop(self, trainer: L.Trainer, problem: str | None, what: str) -> None:
        if trainer.strategy.reduce_boolean_decision(problem is not None, all=False):  # all processes stop together
            raise Diverged(
                f"training diverged at epoch {trainer.current_epoch}, step {trainer.global_step}: {what} "
                f"{problem or 'is broken in another process'}; the checkpoints written before are kept. {ADVICE}"
            )

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):
            return
        value = loss.detach().float().item()
        problem = self._problem(value)
        self._stop(trainer, problem, "the loss")
        if self.reference is None:
            self._first.append(value)
            if len(self._first) == self.reference_steps:
                self.reference = sum(self._first) / len(self._first)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # runs before the checkpoint callbacks' own on_validation_end: Lightning calls those last
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        loss = trainer.callback_metrics.get("val/loss")
        problem = self._problem(float(loss)) if loss is not None and loss.numel() == 1 else None
        what = "the validation loss"
        if problem is None and not finite_state(pl_module):
            problem, what = "are no longer finite", "the weights"
        self._stop(trainer, problem, what)
