"""Warns early when ``trainer.max_time`` will stop a run before its planned epochs, and its schedule, end."""

import time

import lightning as L
from lightning.pytorch.callbacks import Timer

from vlc.errors import warn


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


class TimeBudgetCheck(L.Callback):
    """Projects the run's length from its first steps and warns once if ``max_time`` would cut it short.

    A run stopped by ``max_time`` ends where it is: with a step-sized schedule such as one-cycle, in the middle of
    the schedule, at a high learning rate. The projection is made after ``after_steps`` training steps (training
    only) and again at the end of the first epoch of the session (validation included).

    Args:
        after_steps: training steps timed before the first projection.
    """

    def __init__(self, after_steps: int = 20) -> None:
        self.after_steps = after_steps
        self.warned = False
        self.start: tuple[float, int] | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = (time.monotonic(), trainer.global_step)
        self.epoch = trainer.current_epoch

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        if self.start is not None and trainer.global_step - self.start[1] == self.after_steps:
            self._check(trainer, "steps")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.start is not None and trainer.current_epoch == self.epoch:
            self._check(trainer, "epoch")

    def _check(self, trainer: L.Trainer, unit: str) -> None:
        timer = next((cb for cb in trainer.callbacks if isinstance(cb, Timer)), None)
        if self.warned or timer is None or timer.time_remaining() is None or trainer.max_epochs in (None, -1):
            return
        elapsed = time.monotonic() - self.start[0]
        steps_done = trainer.global_step - self.start[1]
        per_epoch = trainer.num_training_batches
        if unit == "steps":
            remaining = (trainer.max_epochs * per_epoch - trainer.global_step) * elapsed / max(1, steps_done)
        else:
            remaining = (trainer.max_epochs - trainer.current_epoch - 1) * elapsed
        if remaining <= timer.time_remaining():
            return
        self.warned = True
        left = timer.time_remaining()
        rate = elapsed / max(1, steps_done)
        stop_epoch = trainer.current_epoch + left / max(rate * per_epoch, 1e-9)
        note = " (validation not counted)" if unit == "steps" else ""
        warn(
            f"trainer.max_time ({_minutes(timer._duration)}) will stop this run at about epoch "
            f"{min(stop_epoch, trainer.max_epochs):.0f} of {trainer.max_epochs}: the rest needs about "
            f"{_minutes(remaining)} at {rate:.2f} s per step{note}, only {_minutes(left)} are left, and the "
            "learning-rate schedule will not finish. Raise trainer.max_time or lower trainer.max_epochs"
        )
