"""Faults that tests inject into real runs: a callback that fires at a chosen training step, a fake clock, and a
probe that reports what each process of a multi-process run did.

Added on the command line (``--trainer.callbacks+=faults.Fault --trainer.callbacks.step=5``), with the tests folder on
``PYTHONPATH`` for runs in a subprocess.
"""

import hashlib
import os
import signal
import time
from pathlib import Path

import lightning as L
import torch

from vlc.errors import UserError


class Fault(L.Callback):
    """At training step ``step``: send this process ``SIGKILL``, ``SIGTERM`` or ``SIGINT``, or make the weights NaN.

    ``once``: a file created when the fault fires; while it exists the fault does not fire again. ``rank``: only the
    process of that global rank fires it (``None``: every process). ``fault: user_error`` raises a ``UserError``.

    ``fault: nan_val_loss``: from the first validation at or after ``step``, every batch norm's running variance is
    negative, so the validation loss is NaN while the weights and the training loss stay finite.
    """

    def __init__(self, step: int = 5, fault: str = "SIGKILL", once: str | None = None, rank: int | None = None) -> None:
        self.step, self.fault, self.once, self.rank = step, fault, once, rank

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if trainer.global_step != self.step or self.rank not in (None, trainer.global_rank):
            return
        if self.once is not None:  # a file marks that it fired: a later run with the same options goes through
            if os.path.exists(self.once):
                return
            open(self.once, "w").close()
        if self.fault == "user_error":
            raise UserError(f"a fault injected at step {self.step} on rank {trainer.global_rank}")
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


def weights_hash(named: list[tuple[str, torch.Tensor]]) -> str:
    """A hash of ``(name, tensor)`` pairs: a module's parameters, or the same entries of a checkpoint's state_dict."""
    return hashlib.sha256(b"".join(name.encode() + t.float().numpy().tobytes() for name, t in named)).hexdigest()


class Probe(L.Callback):
    """Writes, into ``folder``, what this process (global rank R) did: ``rankR.started`` (its pid) once training has
    run ``started_at`` steps, ``rankR.hash`` when training ends (:func:`weights_hash` of its parameters, then their
    names, a line each). Each training step takes at least ``delay`` seconds, so that a test can act while it trains.
    """

    def __init__(self, folder: str, started_at: int = 1, delay: float = 0.0) -> None:
        self.folder, self.started_at, self.delay = Path(folder), started_at, delay

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.started_at:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / f"rank{trainer.global_rank}.started").write_text(str(os.getpid()))
        time.sleep(self.delay)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        named = [(name, p.detach().cpu()) for name, p in pl_module.named_parameters()]
        lines = [weights_hash(named), *(name for name, _ in named)]
        (self.folder / f"rank{trainer.global_rank}.hash").write_text("\n".join(lines))
