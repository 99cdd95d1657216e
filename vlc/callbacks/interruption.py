"""SIGTERM and Ctrl-C (SIGINT) as a user expects them: stop soon, keep the progress, exit non-zero."""

import signal
import threading

import lightning as L

from vlc.errors import warn

EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}
"""The shell's convention: 128 + the signal number."""


class Interruption(L.Callback):
    """Turns SIGTERM and SIGINT into a graceful stop inside the training loop and an immediate one elsewhere.

    Inside the training loop (after ``on_train_start``) the first signal asks Lightning to stop after the current
    batch; ``vlc.callbacks.Checkpoint`` then writes ``last.ckpt`` and the CLI prints how to resume and exits with
    130 (SIGINT) or 143 (SIGTERM). A second signal, or one during set-up, validation-only runs or prediction,
    stops at once (nothing half-done is saved). Lightning alone exits 0 on SIGTERM, 1 on Ctrl-C, and ignores
    SIGTERM outside training.

    Use as a context manager around the trainer call: it installs its handlers on entry and restores the previous
    ones on exit. ``signal`` then names the signal received, if any.
    """

    def __init__(self) -> None:
        self.signal: str | None = None
        self.trainer: L.Trainer | None = None
        self.previous: dict[int, object] = {}

    def __enter__(self) -> "Interruption":
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.trainer = trainer

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.trainer = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.signal is not None and self.trainer is not None:  # deferred until validation is complete
            trainer._signal_connector.received_sigterm = True

    def _handle(self, signum: int, frame) -> None:
        first = self.signal is None
        self.signal = signal.Signals(signum).name
        trainer = self.trainer
        if not first or trainer is None or trainer.sanity_checking:
            raise KeyboardInterrupt
        # Lightning's flag stops the run after the current training batch; during validation (where it would stop
        # in the middle, and a resumed run would score the epoch on part of the data) it waits until the end
        trainer._signal_connector.received_sigterm = not trainer.validating
        warn(f"{self.signal} received: stopping after the current batch and saving a checkpoint")
