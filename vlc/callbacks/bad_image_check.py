"""Decides, at the end of each pass over files decoded on the fly, what the images that failed mean for the run."""

import lightning as L
import torch

from vlc.errors import UserError


class BadImageCheck(L.Callback):
    """After a training epoch, a validation or a test pass, applies ``data.bad_images`` to what failed to decode.

    Without an image cache, a damaged file is only found when the loader reaches it; the loader leaves it out of
    its batch and the data module records it (``vlc.data.bad_images``). So every bad file of a pass is named at
    once: with ``data.bad_images: stop`` the run stops after the pass that met them (with validation at the end
    of every epoch, before that epoch's checkpoint is written), with ``skip`` it warns and goes on unless the
    share is over ``data.max_bad_fraction``. Under DDP the counts are summed and the processes agree, so that all
    of them stop. A file in the part of an epoch that ``drop_last`` leaves out is met in a later epoch.
    """

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._settle(trainer, "training images", "train")

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._settle(trainer, "validation images", "val")

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._settle(trainer, "test images", "test")

    @staticmethod
    def _settle(trainer: L.Trainer, what: str, split: str) -> None:
        datamodule = trainer.datamodule
        bad = getattr(datamodule, "bad_images", None)
        if bad is None:
            return
        dataset = getattr(datamodule, "datasets", {}).get(split)
        count = bad.pending(split)
        if trainer.world_size > 1:  # each process read its share of the files: count them all
            count = int(trainer.strategy.reduce(torch.tensor(float(count)), reduce_op="sum").item())
        error = bad.verdict(what, len(dataset) if dataset is not None else 0, split, count)
        if trainer.strategy.reduce_boolean_decision(error is not None, all=False):
            raise UserError(error or f"another process met {what} that cannot be read (named in its output)")
