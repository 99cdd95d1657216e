"""SIGTERM and Ctrl-C (SIGINT) as a user expects them: stop soon, keep the progress, exit non-zero."""

import signal
import threading

import lightning as L

from vlc.errors import warn

EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}
"""The shell's convention: 128 + the signal number."""


class Interruption(L.Callback):
    """Turns SIGTERM and SIGINT into a graceful stop inside the training loop and an immediate one elsewhere.

    Inside the training loop the first signal stops the run after the current batch (after the current validation,
    if one is running: stopping inside it would leave that epoch scored on part of the data). Lightning then raises
    its ``SIGTERMException``, ``vlc.callbacks.Checkpoint`` writes ``last.ckpt``, and the CLI prints how to resume
    and exits with 130 (SIGINT) or 143 (SIGTERM). Under DDP the processes agree after every batch on whether any
    of them was signalled, so that all stop at the same step. A second signal, or one during set-up, validation
    or test runs or prediction, stops at once (nothing half-done is saved). Lightning alone exits 0 on SIGTERM, 1 on
    Ctrl-C, and ignores SIGTERM outside training.

    Use as a context manager around the trainer call: it installs its handlers on entry and restores the previous
    ones on exit. ``signal`` then names the signal received, if any.
    """

    def __init__(self) -> None:
        self.signal: str | None = None
        self.pending = False
        self.in_loop = False
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

    def _handle(self, signum: int, frame) -> None:
        first = self.signal is None
        self.signal = signal.Signals(signum).name
        if not first or not self.in_loop:
            raise KeyboardInterrupt
        self.pending = True
        warn(f"{self.signal} received: stopping after the current batch and saving a checkpoint")

    # -- the training loop: when a pending signal stops the run ----------------------------------------------
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.in_loop = not trainer.sanity_checking
        if self.previous:  # replace the handler Lightning installed for the run: the stop is decided here
            signal.signal(signal.SIGTERM, self._handle)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.in_loop = False

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        self._agree(trainer)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.held, trainer._signal_connector.received_sigterm = trainer.received_sigterm, False  # not mid-way

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer._signal_connector.received_sigterm = getattr(self, "held", False)
        self._agree(trainer)

    def _agree(self, trainer: L.Trainer) -> None:
        """Set Lightning's stop flag (it stops after this batch) when this or, under DDP, any process was signalled."""
        if not self.in_loop or trainer.fit_loop._should_accumulate():  # never between accumulated batches
            return
        if trainer.strategy.reduce_boolean_decision(self.pending, all=False):
            trainer._signal_connector.received_sigterm = True
