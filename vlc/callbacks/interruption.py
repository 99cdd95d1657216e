"""SIGTERM and Ctrl-C (SIGINT) as a user expects them: stop soon, keep the progress, exit non-zero."""

import multiprocessing
import os
import signal
import threading
from dataclasses import dataclass

import lightning as L
import torch
from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher
from lightning.pytorch.trainer.call import _interrupt
from lightning.pytorch.utilities.exceptions import SIGTERMException

from vlc.callbacks.checkpoint import Checkpoint
from vlc.errors import warn

EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}
"""The shell's convention: 128 + the signal number."""


@dataclass
class Progress:
    """Where an interrupted run stopped and what it saved (``last`` is empty when it saved nothing)."""

    signal: str | None
    epoch: int
    step: int
    last: str = ""
    last_step: int | None = None
    trainer_results = None  # what Lightning's spawn launcher returns from the main process


def progress(trainer: L.Trainer, signal_name: str | None = None) -> Progress:
    """``trainer``'s epoch and step, and the ``last.ckpt`` of its ``vlc.callbacks.Checkpoint`` if it wrote one."""
    callback = trainer.checkpoint_callback
    saved = isinstance(callback, Checkpoint) and os.path.isfile(callback.last_model_path)
    last, last_step = (callback.last_model_path, callback.last_step_saved) if saved else ("", None)
    return Progress(signal_name, trainer.current_epoch, trainer.global_step, last, last_step)


def spawned(trainer: L.Trainer) -> bool:
    """Whether ``trainer`` runs in processes it spawned (``ddp_spawn``), this one only waiting for them."""
    return isinstance(trainer.strategy.launcher, _MultiProcessingLauncher)


class Interruption(L.Callback):
    """Turns SIGTERM and SIGINT into a graceful stop inside the training loop and an immediate one elsewhere.

    Inside the training loop the first signal stops the run after the current batch (after the current validation,
    if one is running: stopping inside it would leave that epoch scored on part of the data). Lightning then raises
    its ``SIGTERMException``, ``vlc.callbacks.Checkpoint`` writes ``last.ckpt``, and the CLI prints how to resume
    and exits with 130 (SIGINT) or 143 (SIGTERM). Under DDP the processes agree after every batch on whether any
    of them was signalled, and by which signal, so that all stop at the same step and exit with the same code. A
    second signal, or one during set-up, validation or test runs or prediction, stops at once (nothing half-done is
    saved). Lightning alone exits 0 on SIGTERM, 1 on Ctrl-C, and ignores SIGTERM outside training.

    Under ``ddp_spawn`` the main process only waits for the workers: :meth:`watch` makes a signal it receives a
    stop request to the workers (during training; otherwise it is passed on to them), and an interrupted worker
    still hands its results back, so that the main process reports what the workers reached and saved.

    Use as a context manager around the trainer call: it installs its handlers on entry and restores the previous
    ones on exit. ``signal`` then names the signal received, if any, and ``stopped`` (under ``ddp_spawn``) where
    the workers stopped.
    """

    def __init__(self) -> None:
        self.signal: str | None = None
        self.pending = False
        self.in_loop = False
        self.step_before = 0  # the global step when the current training batch began
        self.stepped = False  # whether the latest training batch stepped the optimizer (not accumulating)
        self.previous: dict[int, object] = {}
        self.pid = os.getpid()
        self.workers: _MultiProcessingLauncher | None = None  # ddp_spawn: the launcher of the processes that train
        self.stop_workers = None  # ddp_spawn: an event the main process sets to stop the workers' training
        self.stopped: Progress | None = None  # ddp_spawn: where the workers stopped, in the main process

    def __enter__(self) -> "Interruption":
        self.pid = os.getpid()
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __getstate__(self) -> dict:
        return {**self.__dict__, "workers": None}  # the launcher travels with the trainer; its processes cannot

    def watch(self, trainer: L.Trainer, training: bool) -> None:
        """Under ``ddp_spawn``, have ``trainer``'s workers report back when interrupted and stop when this is.

        Args:
            trainer: the trainer about to run.
            training: whether it fits (a signal then stops the workers after a batch; otherwise at once).
        """
        launcher = trainer.strategy.launcher
        if type(launcher) is not _MultiProcessingLauncher:  # Lightning's own: not XLA's, not one already replaced
            return
        # private, as SpawnLauncher is (Lightning-AI/pytorch-lightning#9303): the strategy gets vlc's launcher
        self.workers = SpawnLauncher(trainer.strategy, start_method=launcher._start_method)
        trainer.strategy._launcher = self.workers
        self.stop_workers = multiprocessing.get_context(launcher._start_method).Event() if training else None

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous = {}

    def _handle(self, signum: int, frame) -> None:
        first = self.signal is None
        self.signal = signal.Signals(signum).name
        if self.workers is not None and os.getpid() == self.pid:  # ddp_spawn's main process: the workers stop
            self._stop_workers(signum, first)
            return
        if not first or not self.in_loop:
            raise KeyboardInterrupt
        self.pending = True
        warn(f"{self.signal} received: stopping after the current batch and saving a checkpoint")

    def _stop_workers(self, signum: int, first: bool) -> None:
        """The first signal asks the training workers to stop after a batch; any other one is passed on to them."""
        if first and self.stop_workers is not None:
            self.stop_workers.set()
            return
        for process in self.workers.procs:
            if process.is_alive():
                os.kill(process.pid, signum)

    # -- the training loop: when a pending signal stops the run ----------------------------------------------
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.in_loop = not trainer.sanity_checking
        if self.previous:  # replace the handler Lightning installed for the run (a ddp_spawn worker's too)
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, self._handle)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.in_loop = False

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx) -> None:
        self.step_before = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        self.stepped = trainer.global_step != self.step_before
        self._agree(trainer)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.held = trainer.received_sigterm
        request_stop(trainer, False)  # not mid-way

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        request_stop(trainer, getattr(self, "held", False))
        self._agree(trainer)

    def _agree(self, trainer: L.Trainer) -> None:
        """Set Lightning's stop flag (it stops after this batch) when this or, under DDP, any process was signalled.

        The processes agree on the signal too: under torchrun, SLURM or Lightning's own ``ddp`` launcher each one is
        a ``vlc`` command of its own, and those that were not signalled must still report the stop and exit with
        its code (a worker that exits 0 leaves its torchrun agent waiting for the others at its exit barrier).
        """
        if not self.in_loop or not self.stepped:  # never between accumulated batches
            return
        asked = self.stop_workers is not None and self.stop_workers.is_set()  # by ddp_spawn's main process
        number = signal.Signals[self.signal].value if self.pending else signal.SIGTERM.value if asked else 0
        number = int(trainer.strategy.reduce(torch.tensor(number, device=trainer.strategy.root_device), None, "max"))
        if number:
            self.signal = self.signal or signal.Signals(number).name
            request_stop(trainer)


# Private Lightning API, kept where Lightning has no public equivalent (tests/test_private_api.py fails loudly when
# it changes): its stop flag (request_stop) and the ddp_spawn launcher (SpawnLauncher, spawned).


def request_stop(trainer: L.Trainer, stop: bool = True) -> None:
    """Set (or clear) Lightning's SIGTERM flag: the fit stops after the current batch with its ``SIGTERMException``.

    Lightning has no public way to ask for this stop (``Trainer.received_sigterm`` is read-only; ``should_stop``
    ends the epoch as complete, which a mid-epoch resume cannot continue), and its own SIGTERM handling does not
    stop every DDP process at the same step (Lightning-AI/pytorch-lightning#20806).
    """
    trainer._signal_connector.received_sigterm = stop


def _interruption(trainer: L.Trainer) -> Interruption:
    return next(callback for callback in trainer.callbacks if isinstance(callback, Interruption))


class SpawnLauncher(_MultiProcessingLauncher):
    """Lightning's ``ddp_spawn`` launcher, with interrupted workers stopping as a single process does.

    Lightning calls the ``on_exception`` hooks (which save ``last.ckpt`` and record the run as interrupted) only in
    the main process, where nothing trained, and an interrupted worker hands nothing back, so the main process
    waited for it forever. Here the workers call those hooks, rank 0 hands back its :class:`Progress`, and the main
    process stops with Lightning's ``SIGTERMException``.

    Private: Lightning's launcher has no public hook for a worker's exception (a failing ddp worker leaves the
    others and the main process waiting, Lightning-AI/pytorch-lightning#9303, closed as won't fix), so this
    overrides ``_wrapping_function`` and ``_recover_results_in_main_process`` and calls ``_interrupt`` and
    ``Trainer._teardown`` as Lightning's own error path does.
    """

    def _wrapping_function(self, process_idx: int, trainer: L.Trainer | None, *args, **kwargs) -> None:
        try:
            super()._wrapping_function(process_idx, trainer, *args, **kwargs)
        except (SIGTERMException, KeyboardInterrupt) as stop:
            if trainer is None:
                raise
            _interrupt(trainer, stop)
            trainer._teardown()
            if process_idx == 0:
                return_queue = args[3]  # function, args, kwargs, return_queue
                return_queue.put(progress(trainer, _interruption(trainer).signal))

    def _recover_results_in_main_process(self, worker_output, trainer: L.Trainer) -> None:
        if not isinstance(worker_output, Progress):
            super()._recover_results_in_main_process(worker_output, trainer)
            return
        interruption = _interruption(trainer)
        interruption.stopped = worker_output
        interruption.signal = interruption.signal or worker_output.signal
        raise SIGTERMException
