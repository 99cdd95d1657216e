"""Faults that tests inject into real runs: a callback that fires at a chosen training step, and a fake clock.

Added on the command line (``--trainer.callbacks+=faults.Fault --trainer.callbacks.step=5``), with the tests folder on
``PYTHONPATH`` for runs in a subprocess.
"""

import os
import signal

import lightning as L
import torch


class Fault(L.Callback):
    """At training step ``step``: send this process ``SIGKILL``, ``SIGTERM`` or ``SIGINT``, or make the weights NaN.

    ``once``: a file created when the fault fires; while it exists the fault does not fire again.

    ``fault: nan_val_loss``: from the first validation at or after ``step``, every batch norm's running variance is
    negative, so the validation loss is NaN while the weights and the training loss stay finite.
    """

    def __init__(self, step: int = 5, fault: str = "SIGKILL", once: str | None = None) -> None:
        self.step, self.fault, self.once = step, fault, once

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if trainer.global_step != self.step:
            return
        if self.once is not None:  # a file marks that it fired: a later run with the same options goes through
            if os.path.exists(self.once):
                return
            open(self.once, "w").close()
        if self.fault == "nan":
            with torch.no_grad():
                for param in pl_module.parameters():
                    param.fill_(float("nan"))
        elif self.fault != "nan_val_loss":
            os.kill(os.getpid(), getattr(signal, self.fault))

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.fault == "nan_val_loss" and not trainer.sanity_checking and trainer.global_step >= self.step:
            for module in pl_module.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.running_var.fill_(-1.0)


class TestFault(L.Callback):
    """At test batch ``batch``: send this process ``fault`` (``SIGINT``, ``SIGTERM``), before the test scores."""

    def __init__(self, batch: int = 0, fault: str = "SIGINT") -> None:
        self.batch, self.fault = batch, fault

    def on_test_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int, *_) -> None:
        if batch_idx == self.batch:
            os.kill(os.getpid(), getattr(signal, self.fault))


CLOCK = [0.0]
"""The fake clock's time in seconds, advanced by :class:`FakeClock`."""


class FakeTime:
    """Stands in for the ``time`` module of the code a test patches: ``monotonic()`` reads :data:`CLOCK`."""

    @staticmethod
    def monotonic() -> float:
        return CLOCK[0]


class FakeClock(L.Callback):
    """Makes each training step take ``step`` seconds and each validation batch ``val_batch`` seconds of CLOCK.

    From global step ``change_at`` on, a training step takes ``step_after`` seconds: a machine that gets faster or
    slower during the run.
    """

    def __init__(
        self, step: float = 1.0, val_batch: float = 0.25, change_at: int = 0, step_after: float | None = None
    ) -> None:
        self.step, self.val_batch, self.change_at, self.step_after = step, val_batch, change_at, step_after

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        later = self.step_after is not None and trainer.global_step >= self.change_at
        CLOCK[0] += self.step_after if later else self.step

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        CLOCK[0] += self.val_batch
