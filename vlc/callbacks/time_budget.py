"""Warns early when ``trainer.max_time`` will stop a run before its planned epochs, and its schedule, end."""

import math
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
        total = trainer.estimated_stepping_batches  # optimizer steps planned by max_epochs or max_steps
        if self.warned or timer is None or timer.time_remaining() is None or math.isinf(total):
            return
        rate = (time.monotonic() - self.start[0]) / max(1, trainer.global_step - self.start[1])  # s per step
        left = timer.time_remaining()
        if (total - trainer.global_step) * rate <= left:
            return
        self.warned = True
        reach = min(total, trainer.global_step + left / rate)
        note = " (validation not counted yet)" if unit == "steps" else ""
        warn(
            f"trainer.max_time ({_minutes(timer._duration)}) will stop this run after about {reach:.0f} of its "
            f"{total} steps ({reach / total:.0%}): at {rate:.2f} s per step{note} the rest needs about "
            f"{_minutes((total - trainer.global_step) * rate)} and {_minutes(left)} are left, so the learning-rate "
            "schedule will not finish. Raise trainer.max_time or lower trainer.max_epochs"
        )
