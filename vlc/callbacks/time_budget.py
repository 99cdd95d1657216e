"""Fits the learning-rate schedule to ``trainer.max_time``, so that a run with a time budget ends its schedule.

A run stopped by ``max_time`` ends where it is: with a step-sized schedule such as one-cycle, in the middle of the
schedule, at a high learning rate, with a poor model. So, as careful practitioners do by hand, :class:`TimeBudget`
times the training steps and, when the steps that ``max_epochs`` plans do not fit in the budget, makes the schedule
as long as what fits (:meth:`vlc.tasks.OneCycleLR.resize`) and stops the run when it ends. It keeps measuring: the
pace of the last steps and the time of the last validation re-size what is left of the schedule whenever the machine
gets faster or slower, so the run ends close to ``max_time`` either way, whatever the number of steps an epoch (one
included). Validations are counted where they fall; until the first real one, the sanity check's pace estimates them.
The length travels in the checkpoint, so a resumed run continues the same schedule (and Lightning's ``Timer`` the
same budget).

A schedule that cannot be resized (another scheduler, or one stepped per epoch) is left as it is, with a warning
that ``max_time`` will cut it short.
"""

import math
import time
from collections import deque

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


UNLIMITED = 2**62
"""What fits when nothing takes time."""


def steps_in_budget(left: float, step_time: float, val_time: float, steps_between_vals: float, step: int = 0) -> int:
    """Training steps after ``step`` that fit in ``left`` seconds, with the validations they pass and one at the end.

    Args:
        left: seconds left.
        step_time: seconds one training step takes.
        val_time: seconds one validation takes.
        steps_between_vals: training steps from one validation to the next (validations follow steps that are
            multiples of it; infinite without validation).
        step: the step reached, its validation (if one follows it) not yet run.
    """

    def needed(steps: int) -> float:
        end = step + steps
        if math.isinf(steps_between_vals):
            return steps * step_time + val_time
        # validations after the steps in [step, end]: the one of the step reached is still to come
        passed = math.floor(end / steps_between_vals) - math.ceil(max(step, 1) / steps_between_vals) + 1
        final = 0 if passed and end % steps_between_vals == 0 else 1  # a validation at the end, unless one falls there
        return steps * step_time + (passed + final) * val_time

    per_step = step_time + val_time / max(1.0, steps_between_vals)
    if per_step <= 0:
        return UNLIMITED
    steps = max(0, math.floor((left - val_time) / per_step))  # about right: then exact
    while steps > 0 and needed(steps) > left:
        steps -= 1
    while needed(steps + 1) <= left:
        steps += 1
    return steps


class TimeBudget(L.Callback):
    """Sizes a one-cycle schedule to the time ``trainer.max_time`` leaves, re-sizes it as it goes, and ends the run.

    Args:
        skip_steps: first steps of a session left out of the timing (memory allocation, first batches).
        window: the pace is measured over this many last steps, so that it follows a machine that changes speed.
        min_timed: steps timed before the schedule is first sized.
        every: once sized, the schedule is re-sized every this many steps (each sizing is a broadcast under DDP).
        tolerance: a re-sizing that changes the length by less than this share of it is not made (timing noise).
        margin: share of the budget kept free for the timing's error and the final checkpoint.
    """

    def __init__(
        self,
        skip_steps: int = 2,
        window: int = 20,
        min_timed: int = 2,
        every: int = 5,
        tolerance: float = 0.005,
        margin: float = 0.01,
    ) -> None:
        self.skip_steps, self.window, self.min_timed, self.every = skip_steps, window, min_timed, every
        self.tolerance, self.margin = tolerance, margin
        self.first_step = 0  # the global step this session started from
        self.paces: deque[tuple[float, int]] = deque(maxlen=window + 1)  # (training seconds, global step)
        self.paused = 0.0  # seconds of validation this session
        self.clock = 0.0  # when the current sanity check or validation began
        self.val_time: float | None = None  # seconds one validation takes (None: not timed yet)
        self.measured = False  # whether val_time comes from a real validation (else the sanity check's estimate)
        self.sized = self.warned = False
        self.said = 0  # the length last printed

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
        self.first_step, self.paused = trainer.global_step, 0.0
        self.paces.clear()
        schedule, timer = self.schedule(trainer), self.timer(trainer)
        if schedule is not None and timer is not None and schedule.budget not in (None, duration(timer)):
            self.sized = False  # resumed with another budget: its end is not this run's end until re-sized

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        schedule = self.schedule(trainer)
        if self.sized and schedule is not None and schedule.budget and trainer.global_step >= schedule.total_steps:
            trainer.should_stop = True  # the sized schedule is over: the rest of the budget is not needed
            return
        if self.timer(trainer) is None or trainer.global_step - self.first_step < self.skip_steps:
            return
        if not self.paces or self.paces[-1][1] != trainer.global_step:  # one entry per optimizer step
            self.paces.append((time.monotonic() - self.paused, trainer.global_step))
        steps = trainer.global_step - self.first_step  # the same on every process: they size together
        if len(self.paces) > self.min_timed and (not self.sized or steps % self.every == 0):
            self._fit(trainer)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.clock = time.monotonic()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Say so when ``max_time`` cut the schedule short (a budget too short to be timed, a schedule not sized)."""
        timer, schedule = self.timer(trainer), self.schedule(trainer)
        if timer is None or schedule is None or timer.time_remaining() > 0 or trainer.received_sigterm:
            return
        if trainer.global_step < 0.98 * schedule.total_steps:  # not the last steps of a sized one: its annealing
            warn(
                f"trainer.max_time ({minutes(duration(timer))}) stopped the run at step {trainer.global_step} of its "
                f"{schedule.total_steps}-step schedule ({trainer.global_step / schedule.total_steps:.0%}), learning "
                f"rate {schedule.get_last_lr()[0]:.3g}: the model did not finish training; raise trainer.max_time"
            )

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        seconds = trainer.strategy.broadcast(time.monotonic() - self.clock)
        self.paused += seconds
        self.val_time, self.measured = seconds, True

    # -- sizing --------------------------------------------------------------------------------------------------
    def _fit(self, trainer: L.Trainer) -> None:
        """Size what is left of the schedule to the time left, at the pace of the last steps."""
        timer, schedule = self.timer(trainer), self.schedule(trainer)
        (first, first_step), (last, last_step) = self.paces[0], self.paces[-1]
        step_time = trainer.strategy.broadcast((last - first) / (last_step - first_step))  # every process alike
        val_time = self.val_time if self.val_time is not None else 0.0
        left = timer.time_remaining() - self.margin * duration(timer)
        step = trainer.global_step
        fits = step + steps_in_budget(left, step_time, val_time, self.steps_between_vals(trainer), step)
        planned = trainer.estimated_stepping_batches
        if schedule is None:
            self.sized = True
            self._warn_unsized(trainer, timer, fits, planned, step_time)
            return
        if fits >= planned and schedule.budget is None:  # the steps planned fit: nothing to do
            return
        fits = max(step + 1, min(fits, planned))
        if self.sized and abs(fits - schedule.total_steps) <= self.tolerance * schedule.total_steps:
            return
        self.sized = True
        schedule.resize(fits, duration(timer))
        if trainer.is_global_zero and abs(fits - self.said) > 0.1 * max(self.said, 1):  # the first, and big changes
            how = "" if not self.said else (" (faster now)" if fits > self.said else " (slower now)")
            planned_note = "" if math.isinf(planned) else f" of the {planned} steps planned"
            print(
                f"vlc: time budget{how}: trainer.max_time {minutes(duration(timer))} fits about {fits}{planned_note} "
                f"({step_time:.3f} s a step, {val_time:.1f} s a validation): the one-cycle schedule now ends at "
                f"step {fits}, where the run stops",
                flush=True,
            )
            self.said = fits

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
