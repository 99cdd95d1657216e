"""Learning-rate schedules sized to the run, for runs of any length and runs resumed with another length."""

import math

import torch
from torch.optim.lr_scheduler import LRScheduler

from vlc.errors import warn

PHASES = {  # three phases or two: (start, end) of the learning rate and of the momentum, as torch's group keys
    False: [
        ("initial_lr", "max_lr", "max_momentum", "base_momentum"),
        ("max_lr", "min_lr", "base_momentum", "max_momentum"),
    ],
    True: [
        ("initial_lr", "max_lr", "max_momentum", "base_momentum"),
        ("max_lr", "initial_lr", "base_momentum", "max_momentum"),
        ("initial_lr", "min_lr", "max_momentum", "max_momentum"),
    ],
}


def phase_ends(pct_start: float, total_steps: int, three_phase: bool) -> list[float]:
    """The last step of each phase, as torch's ``OneCycleLR`` computes them (fractional steps included)."""
    ends = [float(pct_start * total_steps) - 1, float(total_steps - 1)]
    if three_phase:  # up, down to the start, annihilation
        ends.insert(1, float(2 * pct_start * total_steps) - 2)
    return ends


def anneal(start: float, end: float, pct: float, strategy: str) -> float:
    """From ``start`` (``pct`` 0) to ``end`` (``pct`` 1): half a cosine (``cos``) or a line (``linear``)."""
    if strategy == "cos":
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
    return (end - start) * pct + start


def per_group(name: str, optimizer: torch.optim.Optimizer, value) -> list:
    """``value`` for each parameter group: a list of as many values, or one value for all."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(optimizer.param_groups):
            raise ValueError(f"{name} has {len(value)} values for {len(optimizer.param_groups)} parameter groups")
        return list(value)
    return [value] * len(optimizer.param_groups)


class OneCycleLR(LRScheduler):
    """The one-cycle policy, computed as torch's ``OneCycleLR`` computes it, made safe for any run.

    The policy is Smith and Topin's (2017, https://arxiv.org/abs/1708.07120); the learning rates and momenta are
    torch's, step for step (same formulas, same parameter-group keys ``initial_lr``, ``max_lr``, ``min_lr``,
    ``max_momentum``, ``base_momentum``), with these differences:

    - any length works, one step included: a phase shorter than a step is complete at once (torch divides by
      zero when ``pct_start * total_steps`` is 1 or less);
    - a step past the end keeps the final learning rate (torch raises ``Tried to step N times``);
    - :meth:`load_state_dict` restores the step reached but keeps the length this schedule was built with: a run
      resumed with a larger ``max_epochs`` continues, from the step it reached, on the schedule of the new length
      (its learning rate jumps to the new schedule's value at that step), and says so; it also reads the state of
      torch's ``OneCycleLR``, which vlc's schedule was until 2026, so older checkpoints resume;
    - :meth:`resize` changes the length in mid-run (``vlc.callbacks.TimeBudget`` sizes it to ``trainer.max_time``).
      A length sized to a time budget is saved with the schedule and kept when the run resumes.

    ``ImageClassifier`` and ``ImageCaptioner`` give it ``total_steps`` from the trainer when the config leaves it
    out. The arguments are torch's ``OneCycleLR``'s.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        max_lr: float | list[float],
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float | list[float] = 0.85,
        max_momentum: float | list[float] = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        last_epoch: int = -1,
    ) -> None:
        if total_steps is None and epochs is not None and steps_per_epoch is not None:
            total_steps = epochs * steps_per_epoch
        if not isinstance(total_steps, int) or total_steps <= 0:
            raise ValueError("OneCycleLR needs a positive integer total_steps (or epochs and steps_per_epoch)")
        if not isinstance(pct_start, float) or not 0 <= pct_start <= 1:
            raise ValueError(f"OneCycleLR: pct_start must be a float between 0 and 1, got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"OneCycleLR: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.total_steps, self.anneal_strategy = total_steps, anneal_strategy
        self.ends = phase_ends(pct_start, total_steps, three_phase)
        self.budget: float | None = None  # the time budget (seconds) the length was sized to by resize()
        self.cycle_momentum = cycle_momentum
        self.use_beta1 = "betas" in optimizer.defaults
        if cycle_momentum and "momentum" not in optimizer.defaults and not self.use_beta1:
            raise ValueError("OneCycleLR: cycle_momentum needs an optimizer with momentum or betas")
        if last_epoch == -1:  # a new schedule; a restored one keeps its optimizer's values
            self._init_groups(optimizer, max_lr, base_momentum, max_momentum, div_factor, final_div_factor)
        super().__init__(optimizer, last_epoch)

    def _init_groups(self, optimizer, max_lr, base_momentum, max_momentum, div_factor, final_div_factor) -> None:
        """Write the schedule's values into the parameter groups, under torch's keys (the optimizer saves them)."""
        for group, peak in zip(optimizer.param_groups, per_group("max_lr", optimizer, max_lr)):
            group["initial_lr"] = peak / div_factor
            group["max_lr"] = peak
            group["min_lr"] = group["initial_lr"] / final_div_factor
        if self.cycle_momentum:
            highs, lows = (
                per_group("max_momentum", optimizer, max_momentum),
                per_group("base_momentum", optimizer, base_momentum),
            )
            for group, high, low in zip(optimizer.param_groups, highs, lows):
                group["max_momentum"], group["base_momentum"] = high, low

    def values(self, step: int) -> list[tuple[float, float | None]]:
        """``(lr, momentum)`` of each parameter group at ``step`` (momentum None without ``cycle_momentum``)."""
        step = min(max(step, 0), self.total_steps - 1)
        start = 0.0
        for i, end in enumerate(self.ends):
            if step <= end or i == len(self.ends) - 1:
                pct = min(1.0, (step - start) / (end - start)) if end > start else 1.0
                break
            start = end
        lr_from, lr_to, momentum_from, momentum_to = PHASES[len(self.ends) == 3][i]
        out = []
        for group in self.optimizer.param_groups:
            lr = anneal(group[lr_from], group[lr_to], pct, self.anneal_strategy)
            momentum = None
            if self.cycle_momentum:
                momentum = anneal(group[momentum_from], group[momentum_to], pct, self.anneal_strategy)
            out.append((lr, momentum))
        return out

    def get_lr(self) -> list[float]:
        """The learning rates at the current step; sets the momenta too, as torch's ``OneCycleLR`` does."""
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
        pct_start = (self.ends[0] + 1) / self.total_steps
        self.total_steps, self.budget = max(1, int(total_steps)), budget
        self.ends = phase_ends(pct_start, self.total_steps, len(self.ends) == 3)
        self._jump_to(self.last_epoch)

    def _jump_to(self, step: int) -> None:
        """Set the learning rate (and momentum) of every group to this schedule's values at ``step``."""
        self.last_epoch = step - 1
        self.step()  # to `step` again, on the current length

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the step reached (and a length sized to a time budget), from this class's state or torch's."""
        state = dict(state_dict)
        if "_schedule_phases" in state:  # torch's OneCycleLR's state (vlc's schedule until 2026)
            state["ends"] = [float(phase["end_step"]) for phase in state["_schedule_phases"]]
            state["anneal_strategy"] = state.get("_anneal_func_type", self.anneal_strategy)
        planned, ends = self.total_steps, self.ends
        super().load_state_dict({key: value for key, value in state.items() if key in self.__dict__})
        if self.budget is not None:  # sized to a time budget: the run continues the same schedule
            return
        saved, self.total_steps, self.ends = self.total_steps, planned, ends
        if saved == planned:
            return
        self._jump_to(self.last_epoch)
        warn(
            f"the one-cycle schedule was planned for {saved} steps and now has {planned}: it continues at step "
            f"{self.last_epoch} of the new length, learning rate {_fmt(self.get_last_lr()[0])}"
        )


def _fmt(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else str(value)
