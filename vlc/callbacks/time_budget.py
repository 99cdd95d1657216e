"""Fits the learning-rate schedule to ``trainer.max_time``, so that a run with a time budget ends its schedule.

A run stopped by ``max_time`` ends where it is: with a step-sized schedule such as one-cycle, in the middle of the
schedule, at a high learning rate, with a poor model. So, as careful practitioners do by hand, :class:`TimeBudget`
times the first training steps and, when the steps that ``max_epochs`` plans do not fit in the budget, makes the
schedule as long as what fits (:meth:`vlc.tasks.OneCycleLR.resize`) and stops the run when it ends. The budget is
split between training and validation: each epoch's validation is counted, timed in the sanity check until the
first real validation, when the length is sized once more with the measured time. The length travels in the
checkpoint, so a resumed run continues the same schedule (and Lightning's ``Timer`` the same budget).

A schedule that cannot be resized (another scheduler, or one stepped per epoch) is left as it is, with a warning
that ``max_time`` will cut it short.
"""

import math
import time

import lightning as L
from lightning.pytorch.callbacks import Timer
from lightning.pytorch.trainer.states import RunningStage

from vlc.errors import warn
from vlc.tasks.schedules import OneCycleLR


def minutes(seconds: float) -> str:
    """``seconds`` for a message: ``15 min`` or ``42 s``."""
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def duration(timer: Timer) -> float:
    """The budget of Lightning's ``timer`` in seconds (``trainer.max_time``), exactly, from its public API alone.

    A fit never predicts: the time its ``Timer`` leaves to the predicting stage is the whole budget.
    """
    return timer.time_remaining(RunningStage.PREDICTING)


def steps_in_budget(left: float, step_time: float, val_time: float, steps_between_vals: float) -> int:
    """Training steps that fit in ``left`` seconds, with a validation every so often and one at the end.

    Args:
        left: seconds left.
        step_time: seconds one training step takes.
        val_time: seconds one validation takes.
        steps_between_vals: training steps from one validation to the next.
    """
    per_step = step_time + val_time / max(1.0, steps_between_vals)
    return max(0, math.floor((left - val_time) / per_step))


class TimeBudget(L.Callback):
    """Sizes a one-cycle schedule to the time ``trainer.max_time`` leaves, and stops the run at its end.

    Args:
        after_steps: training steps timed before the schedule is sized (the first ``skip_steps`` are not timed).
        skip_steps: first steps left out of the timing (memory allocation, first batches).
        margin: share of the budget kept free for the timing's error and the final checkpoint.
    """

    def __init__(self, after_steps: int = 20, skip_steps: int = 3, margin: float = 0.03) -> None:
        self.after_steps, self.skip_steps, self.margin = after_steps, skip_steps, margin
        self.first_step = 0  # the global step this session started from
        self.start: tuple[float, int] | None = None  # (clock, global step) when this session's timing began
        self.paused = 0.0  # seconds of validation since then
        self.clock = 0.0  # when the current sanity check or validation began
        self.val_time: float | None = None  # seconds one validation takes (None: not timed yet)
        self.measured = False  # whether val_time comes from a real validation (else the sanity check's estimate)
        self.sized = self.warned = False

    # -- what the trainer has ------------------------------------------------------------------------------------
    @staticmethod
    def timer(trainer: L.Trainer) -> Timer | None:
        """Lightning's ``Timer`` of ``max_time``, when the run has a budget."""
        timer = next((cb for cb in trainer.callbacks if isinstance(cb, Timer)), None)
        return timer if timer is not None and timer.time_remaining() is not None else None

    @staticmethod
    def schedule(trainer: L.Trainer) -> OneCycleLR | None:
        """The run's step-wise one-cycle schedule, the one kind this callback can resize."""
        for config in trainer.lr_scheduler_configs:
            if isinstance(config.scheduler, OneCycleLR) and config.interval == "step":
                return config.scheduler
        return None

    @staticmethod
    def steps_between_vals(trainer: L.Trainer) -> float:
        """Optimizer steps from one validation to the next (infinite without validation)."""
        if not sum(trainer.num_val_batches) or trainer.val_check_batch is None:
            return math.inf
        batches = trainer.val_check_batch * (trainer.check_val_every_n_epoch or 1)
        return batches / trainer.accumulate_grad_batches

    # -- timing ------------------------------------------------------------------------------------------------
    def on_sanity_check_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.clock = time.monotonic()

    def on_sanity_check_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        batches = sum(trainer.num_sanity_val_batches)
        if batches and self.val_time is None:  # one validation ~ all its batches at the sanity check's pace
            self.val_time = (time.monotonic() - self.clock) / batches * sum(trainer.num_val_batches)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.first_step, self.start = trainer.global_step, None
        schedule, timer = self.schedule(trainer), self.timer(trainer)
        if schedule is not None and timer is not None and schedule.budget != duration(timer):
            self.sized = False  # not sized yet, or resumed with another budget: time and size again

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        schedule = self.schedule(trainer)
        if self.sized and schedule is not None and schedule.budget and trainer.global_step >= schedule.total_steps:
            trainer.should_stop = True  # the sized schedule is over: the rest of the budget is not needed
        if self.timer(trainer) is None:
            return
        if self.start is None and trainer.global_step - self.first_step >= self.skip_steps:
            self.start, self.paused = (time.monotonic(), trainer.global_step), 0.0
        elif not self.sized and self.start is not None and trainer.global_step - self.start[1] >= self.after_steps:
            self._fit(trainer, "")

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.clock = time.monotonic()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        seconds = trainer.strategy.broadcast(time.monotonic() - self.clock)
        self.paused += seconds if self.start is not None else 0.0
        self.val_time, measured = seconds, self.measured
        self.measured = True
        timed = self.start is not None and trainer.global_step > self.start[1]
        if self.sized and not measured and timed and self.timer(trainer) is not None:
            self._fit(trainer, " (validation timed)")  # sized with the sanity check's estimate: once more

    # -- sizing --------------------------------------------------------------------------------------------------
    def _fit(self, trainer: L.Trainer, how: str) -> None:
        timer, schedule = self.timer(trainer), self.schedule(trainer)
        step_time = (time.monotonic() - self.start[0] - self.paused) / (trainer.global_step - self.start[1])
        step_time = trainer.strategy.broadcast(step_time)  # every process sizes alike
        val_time = self.val_time if self.val_time is not None else 0.0
        left = timer.time_remaining() - self.margin * duration(timer)
        fits = trainer.global_step + steps_in_budget(left, step_time, val_time, self.steps_between_vals(trainer))
        planned = trainer.estimated_stepping_batches
        if schedule is None:
            self.sized = True
            self._warn_unsized(trainer, timer, fits, planned, step_time)
            return
        total = schedule.total_steps if schedule.budget is not None else planned
        if fits >= planned and schedule.budget is None:  # the steps planned fit: nothing to do
            self.sized = True
            return
        fits = max(trainer.global_step + 1, min(fits, planned))
        first = not self.sized
        self.sized = True
        schedule.resize(fits, duration(timer))
        if trainer.is_global_zero and (first or fits != total):
            planned_note = "" if math.isinf(planned) else f" of the {planned} steps planned"
            print(
                f"vlc: time budget{how}: trainer.max_time {minutes(duration(timer))} fits about {fits}{planned_note} "
                f"({step_time:.3f} s a step, {val_time:.1f} s a validation): the one-cycle schedule now ends at "
                f"step {fits}, where the run stops",
                flush=True,
            )

    def _warn_unsized(self, trainer: L.Trainer, timer: Timer, fits: int, planned: float, step_time: float) -> None:
        if self.warned or math.isinf(planned) or fits >= planned or not trainer.lr_scheduler_configs:
            return
        self.warned = True
        warn(
            f"trainer.max_time ({minutes(duration(timer))}) will stop this run after about {fits} of its {planned} "
            f"steps ({fits / planned:.0%}, at {step_time:.2f} s a step): its learning-rate schedule cannot be "
            "resized to the budget (vlc.tasks.OneCycleLR stepped per step can) and will not finish. Raise "
            "trainer.max_time or lower trainer.max_epochs"
        )

    # -- checkpoints ---------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"sized": self.sized, "measured": self.measured, "val_time": self.val_time}

    def load_state_dict(self, state_dict: dict) -> None:
        self.sized, self.measured = state_dict.get("sized", False), state_dict.get("measured", False)
        self.val_time = state_dict.get("val_time")
