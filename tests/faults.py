"""Faults that tests inject into real runs: a callback that fires at a chosen training step.

Added on the command line (``--trainer.callbacks+=faults.Fault --trainer.callbacks.step=5``), with the tests folder on
``PYTHONPATH`` for runs in a subprocess.
"""

import os
import signal

import lightning as L
import torch


class Fault(L.Callback):
    """At training step ``step``: send this process ``SIGKILL``, ``SIGTERM`` or ``SIGINT``, or make the weights NaN."""

    def __init__(self, step: int = 5, fault: str = "SIGKILL") -> None:
        self.step, self.fault = step, fault

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if trainer.global_step != self.step:
            return
        if self.fault == "nan":
            with torch.no_grad():
                for param in pl_module.parameters():
                    param.fill_(float("nan"))
        else:
            os.kill(os.getpid(), getattr(signal, self.fault))
