"""Checkpoints a user can rely on: the latest state always in ``last.ckpt``, written atomically, never NaN."""

import contextlib
import os
from pathlib import Path
from weakref import proxy

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

from vlc.errors import Diverged, UserError
from vlc.runs import LAST, experiment_folder, new_unlogged_run, run_folder, run_name


def finite_state(module: torch.nn.Module) -> bool:
    """Whether every floating-point parameter and buffer of ``module`` is finite."""
    tensors = [*module.parameters(), *module.buffers()]
    return all(torch.isfinite(t).all() for t in tensors if t.is_floating_point())


class AtomicCheckpointIO(CheckpointIO):
    """Lightning's checkpoint writer ``inner``, writing each file under a temporary name beside it, then renaming it.

    A kill at any moment leaves the previous complete file; a failed write (full disk, no permission) is one line.
    """

    def __init__(self, inner: CheckpointIO) -> None:
        self.inner = inner

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        temporary = f"{path}.tmp"
        try:
            self.inner.save_checkpoint(checkpoint, temporary, storage_options)
            os.replace(temporary, path)  # atomic: same folder, same filesystem
        except (OSError, RuntimeError) as err:
            if isinstance(err, RuntimeError) and "write" not in str(err).lower():  # torch's failed writes say so
                raise
            if os.path.exists(temporary):
                os.remove(temporary)
            raise UserError(f"cannot write the checkpoint {path}: {_reason(err)}; the previous one is kept") from None

    def load_checkpoint(self, path, map_location=None, weights_only: bool | None = None) -> dict:
        return self.inner.load_checkpoint(path, map_location=map_location, weights_only=weights_only)

    def remove_checkpoint(self, path) -> None:
        self.inner.remove_checkpoint(path)

    def teardown(self) -> None:
        self.inner.teardown()


class Checkpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` with the guarantees a user expects from ``last.ckpt`` and ``best-*.ckpt``.

    - ``last.ckpt`` holds the state at the end of the latest epoch, whatever the monitored metric did, and the
      state at the moment of an interruption (SIGTERM, Ctrl-C): ``--ckpt_path last`` resumes from there.
    - ``best-...ckpt`` (``save_top_k`` of them) follow the monitored metric.
    - Each run has its own folder, ``checkpoints/<experiment>/<version>/`` (the logger's name and version;
      ``checkpoints/version_<n>/`` without a logger), unless ``dirpath`` names one; a resumed run continues in its
      folder.
    - Every file is written under a temporary name in its own folder, then renamed (:class:`AtomicCheckpointIO`,
      which it installs as the trainer's checkpoint writer): a kill at any moment leaves the previous complete file.
    - Weights that are not finite are never written: saving them stops the run as diverged instead.

    Args:
        monitor: the metric that ranks ``best`` checkpoints, e.g. ``val/acc``.
        mode: ``max`` or ``min``: whether a larger value of ``monitor`` is better.
        filename: name of the best checkpoints, with metrics in braces, e.g. ``best-epoch{epoch:02d}``.
        save_top_k: how many best checkpoints to keep (none without ``monitor``).
        dirpath: a fixed folder for the checkpoints (default: the run's own folder, see above).
    """

    def __init__(
        self,
        monitor: str | None = None,
        mode: str = "min",
        filename: str | None = "best-epoch{epoch:02d}",
        save_top_k: int = 1,
        dirpath: str | None = None,
    ) -> None:
        super().__init__(
            dirpath=dirpath,
            filename=filename,
            monitor=monitor,
            mode=mode,
            save_top_k=save_top_k if monitor else 0,  # without a metric, "best" would only repeat last.ckpt
            save_last=False,  # last.ckpt is written here (see _refresh_last)
            auto_insert_metric_name=False,
            enable_version_counter=False,  # one run, one folder: last.ckpt is always called last.ckpt
        )
        self.fixed_dirpath = dirpath is not None
        self.last_step_saved: int | None = None  # the global step last.ckpt holds
        self.saves = 0  # checkpoints written (by Lightning's top-k logic or here) in this process
        self.restored_scores: dict[str, float] = {}
        self.unlogged = False  # a run without a logger in its own version_<n> folder (see setup)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.unlogged = not self.fixed_dirpath and run_name(trainer) is None
        if not self.fixed_dirpath:
            self.dirpath = str(self._run_folder(trainer, stage))
        if not isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO):
            trainer.strategy.checkpoint_io = AtomicCheckpointIO(trainer.strategy.checkpoint_io)
        super().setup(trainer, pl_module, stage)

    @staticmethod
    def _run_folder(trainer: L.Trainer, stage: str) -> Path:
        """The run's folder: from its logger's name and version, or, without a logger, a new ``version_<n>``.

        (A resumed run without a logger continues in its checkpoint's folder: see :meth:`load_state_dict`.)
        """
        run = run_name(trainer)
        if run is not None:
            return run_folder(run["name"], run["version"])
        folder = new_unlogged_run() if trainer.is_global_zero and stage == "fit" else None
        return Path(trainer.strategy.broadcast(str(folder) if folder else None) or experiment_folder(None))

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the best checkpoints' record; a run without a logger goes back to the folder it was saved in."""
        saved, new = state_dict.get("dirpath"), self.dirpath
        if self.unlogged and saved and saved != new and Path(saved).is_dir():
            self.dirpath = saved
            with contextlib.suppress(OSError):  # the empty folder setup claimed (another process may have removed it)
                Path(new).rmdir()
        super().load_state_dict(state_dict)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        """Stop the run as diverged rather than save weights that are not finite; else record the run and scores.

        Called on every process before any file is written. A resumed run continues the run's logs and an
        evaluation files its results under it; a resumed run that validates no more still reports the latest
        validation scores at its end, as an uninterrupted one does.

        Raises:
            Diverged: a weight or buffer of the model is NaN or infinite.
        """
        if not finite_state(pl_module):
            raise Diverged(
                f"training diverged at epoch {trainer.current_epoch}, step {trainer.global_step}: the weights are "
                "no longer finite, so no checkpoint was written at this step (the previous ones are kept); "
                "try a lower learning rate or gradient clipping (trainer.gradient_clip_val)"
            )
        self.saves += 1
        run = run_name(trainer)
        if run is not None:
            checkpoint["vlc_run"] = run
        metrics = trainer.callback_metrics.items()
        checkpoint["vlc_val_scores"] = {k: float(v) for k, v in metrics if k.startswith("val/") and v.numel() == 1}

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self.restored_scores = checkpoint.get("vlc_val_scores", {})

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        for key, value in self.restored_scores.items():  # Lightning starts each fit with no metrics
            trainer.callback_metrics.setdefault(key, torch.tensor(value))

    # -- when to write last.ckpt ---------------------------------------------------------------------------
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        saves = self.saves
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self.saves != saves:  # a best checkpoint was written: last.ckpt follows, as with Lightning's save_last
            self._refresh_last(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        saves = self.saves
        super().on_validation_end(trainer, pl_module)
        if self.saves != saves:
            self._refresh_last(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self._refresh_last(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self._refresh_last(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # the graceful stop after a batch (vlc.callbacks.Interruption); an immediate one (KeyboardInterrupt) may come
        # in the middle of a step or a restore: nothing is saved then
        if isinstance(exception, SIGTERMException) and not trainer.sanity_checking and trainer.global_step > 0:
            self._refresh_last(trainer)

    def _refresh_last(self, trainer: L.Trainer) -> None:
        """Write ``last.ckpt`` unless it holds this step already (the same decision on every process: DDP)."""
        if trainer.state.fn != "fit" or trainer.sanity_checking or trainer.fast_dev_run:
            return
        if self.last_step_saved == trainer.global_step:
            return
        self.last_model_path = os.path.join(self.dirpath, LAST)  # before saving: the checkpoint holds it
        trainer.save_checkpoint(self.last_model_path, self.save_weights_only)
        self.last_step_saved = trainer.global_step
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))


def _reason(err: BaseException) -> str:
    """The readable part of a write error (``No space left on device``, ``Permission denied``, ...)."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err).strip().splitlines()[-1][:200]
