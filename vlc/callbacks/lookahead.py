"""airbench's weight averaging: every few steps the weights move to an average of their past, and train on from it.

From Jordan 2024 ("94% on CIFAR-10 in 3.29 seconds on a single GPU", section 3.7; ``LookaheadState`` of
``legacy/airbench94.py``), in the spirit of Lookahead (Zhang et al., 2019): every ``every`` optimizer steps the
average becomes ``decay_t average + (1 - decay_t) weights`` and the network's weights (and batch-norm statistics) are
set to it. ``decay_t = decay (t / T)^power`` grows from 0 (the average follows the weights) to ``decay`` at the
schedule's last step ``T``, and at that step the weights are the average. Unlike an exponential moving average
evaluated beside the network (Lightning's ``EMAWeightAveraging``), the network itself is the average: validation,
checkpoints and predictions need nothing else. The average is saved in checkpoints, so a resumed run is exact.
"""

import lightning as L
import torch
from jsonargparse.typing import ClosedUnitInterval, PositiveFloat, PositiveInt
from torchmetrics import Metric

from vlc.callbacks.time_budget import TimeBudget


class Lookahead(L.Callback):
    """Moves the weights to their running average every ``every`` steps (airbench94: 5, ``0.95**5``, cube).

    Args:
        every: optimizer steps between two updates of the average.
        decay: the weight of the old average at the schedule's last step.
        power: how ``decay_t`` grows with the fraction of the schedule done.
    """

    def __init__(self, every: PositiveInt = 5, decay: ClosedUnitInterval = 0.95**5, power: PositiveFloat = 3.0):
        self.every, self.decay, self.power = every, decay, power
        self.average: list[torch.Tensor] | None = None  # one per floating-point tensor of the model's state
        self.done = -1  # the last step the average was updated at (one update per optimizer step)

    @staticmethod
    def tensors(pl_module: L.LightningModule) -> list[torch.Tensor]:
        """The floating-point parameters and buffers of the model (batch-norm statistics included), in order."""
        of_metrics = {id(t) for m in pl_module.modules() if isinstance(m, Metric) for t in m.buffers()}
        tensors = (*pl_module.parameters(), *pl_module.buffers())
        return [t for t in tensors if t.is_floating_point() and id(t) not in of_metrics]

    @staticmethod
    def total_steps(trainer: L.Trainer) -> int:
        """The schedule's length: the one-cycle schedule's (sized to a time budget), or the steps planned."""
        schedule = TimeBudget.schedule(trainer)
        return schedule.total_steps if schedule is not None else int(trainer.estimated_stepping_batches)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.average is None:  # from scratch (a resumed run restored its average)
            self.average = [t.detach().clone() for t in self.tensors(pl_module)]
        else:
            self.average = [a.to(t.device) for a, t in zip(self.average, self.tensors(pl_module), strict=True)]

    @torch.no_grad()
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        step, total = trainer.global_step, self.total_steps(trainer)
        if step == self.done or (step % self.every and step != total):
            return
        self.done = step
        decay = self.decay * min(step / total, 1.0) ** self.power
        for average, tensor in zip(self.average, self.tensors(pl_module), strict=True):
            if step % self.every == 0:
                average.lerp_(tensor, 1 - decay)
            tensor.copy_(average)  # at the last step, whether or not it updated the average: the average

    def state_dict(self) -> dict:
        return {"average": self.average, "done": self.done}

    def load_state_dict(self, state_dict: dict) -> None:
        self.average, self.done = state_dict["average"], state_dict["done"]
