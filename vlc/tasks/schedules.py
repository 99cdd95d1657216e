"""Learning-rate schedules sized to the run, for runs of any length and runs resumed with another length."""

import math

from torch.optim.lr_scheduler import OneCycleLR as TorchOneCycleLR

from vlc.errors import warn


class OneCycleLR(TorchOneCycleLR):
    """The one-cycle policy as torch computes it, with three differences that make it safe for any run.

    The policy is Smith and Topin's (2017, https://arxiv.org/abs/1708.07120). The differences:

    - any length works, one step included: a phase shorter than a step is complete at once (torch divides by
      zero when ``pct_start * total_steps`` is 1 or less);
    - a step past the end keeps the final learning rate (torch raises ``Tried to step N times``);
    - :meth:`load_state_dict` restores the step reached but keeps the length this schedule was built with: a run
      resumed with a larger ``max_epochs`` continues, from the step it reached, on the schedule of the new length
      (its learning rate jumps to the new schedule's value at that step), and says so;
    - :meth:`resize` changes the length in mid-run (``vlc.callbacks.TimeBudget`` sizes it to ``trainer.max_time``).
      A length sized to a time budget is saved with the schedule and kept when the run resumes.

    ``ImageClassifier`` and ``ImageCaptioner`` give it ``total_steps`` from the trainer when the config leaves it
    out. The arguments are torch's.
    """

    budget: float | None = None
    """The time budget (seconds) the length was sized to by :meth:`resize`; None while it follows the trainer."""

    def values(self, step: int) -> list[tuple[float, float | None]]:
        """``(lr, momentum)`` of each parameter group at ``step`` (momentum None without ``cycle_momentum``)."""
        step = min(max(step, 0), self.total_steps - 1)
        out = []
        for group in self.optimizer.param_groups:
            start = 0.0
            for i, phase in enumerate(self._schedule_phases):
                end = phase["end_step"]
                if step <= end or i == len(self._schedule_phases) - 1:
                    pct = min(1.0, (step - start) / (end - start)) if end > start else 1.0
                    break
                start = end
            lr = self._anneal_func(group[phase["start_lr"]], group[phase["end_lr"]], pct)
            momentum = None
            if self.cycle_momentum:
                momentum = self._anneal_func(group[phase["start_momentum"]], group[phase["end_momentum"]], pct)
            out.append((lr, momentum))
        return out

    def get_lr(self) -> list[float]:
        values = self.values(self.last_epoch)
        self._apply_momentum(values)
        return [lr for lr, _ in values]

    def _apply_momentum(self, values: list[tuple[float, float | None]]) -> None:
        for group, (_, momentum) in zip(self.optimizer.param_groups, values):
            if momentum is None:
                continue
            if self.use_beta1:
                group["betas"] = (momentum, *group["betas"][1:])
            else:
                group["momentum"] = momentum

    def resize(self, total_steps: int, budget: float | None = None) -> None:
        """Make the schedule ``total_steps`` long; the step reached stays, its learning rate jumps to the new value.

        Each phase keeps its share of the length (``pct_start``). ``budget``: the time budget in seconds that
        ``total_steps`` was sized to, which makes the length survive a resume (see :meth:`load_state_dict`).
        """
        pct_start = (self._schedule_phases[0]["end_step"] + 1) / self.total_steps
        self.total_steps, self.budget = max(1, int(total_steps)), budget
        ends = [pct_start * self.total_steps - 1, self.total_steps - 1]  # torch's phase ends
        if len(self._schedule_phases) == 3:  # three_phase: up, down to the start, annihilation
            ends.insert(1, 2 * pct_start * self.total_steps - 2)
        for phase, end in zip(self._schedule_phases, ends):
            phase["end_step"] = float(end)
        self._jump_to(self.last_epoch)

    def _jump_to(self, step: int) -> None:
        """Set the learning rate (and momentum) of every group to this schedule's values at ``step``."""
        values = self.values(step)
        for group, (lr, _) in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._apply_momentum(values)
        self._last_lr = [lr for lr, _ in values]

    def load_state_dict(self, state_dict: dict) -> None:
        planned, phases = self.total_steps, self._schedule_phases
        super().load_state_dict(state_dict)
        if self.budget is not None:  # sized to a time budget: the run continues the same schedule
            return
        saved, self.total_steps, self._schedule_phases = self.total_steps, planned, phases
        if saved == planned:
            return
        self._jump_to(self.last_epoch)
        warn(
            f"the one-cycle schedule was planned for {saved} steps and now has {planned}: it continues at step "
            f"{self.last_epoch} of the new length, learning rate {_fmt(self._last_lr[0])}"
        )


def _fmt(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else str(value)
