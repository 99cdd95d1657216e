"""When a captioner's feature cache is open: from the start of fitting while its whole encoder is frozen."""

from pathlib import Path
from typing import Literal

import lightning as L
from lightning.pytorch.utilities import rank_zero_info


class FeatureCaching(L.Callback):
    """Opens the captioner's feature cache (``pl_module.features``, a ``CachedEncoder``) and drops it again.

    It opens when fitting starts with the whole encoder frozen (``pl_module.encoder_waits()``), sized for every
    training and validation image of the data module (each process caches them all; a disk cache goes into the
    run's log folder), and is dropped, its file removed, when an epoch fine-tunes the encoder, when fitting ends
    and when it fails.

    Args:
        mode: ``auto``, ``memory``, ``disk`` (see ``vlc.models.feature_cache.open_feature_cache``) or ``off``.
        dtype: how features are stored: ``float32`` or ``float16``.
    """

    def __init__(self, mode: Literal["auto", "memory", "disk", "off"], dtype: Literal["float32", "float16"]) -> None:
        self.mode, self.dtype = mode, dtype

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.mode == "off" or not pl_module.encoder_waits():
            return
        datasets = getattr(trainer.datamodule, "datasets", {})
        num_images = sum(len(getattr(datasets[s], "keys", datasets[s])) for s in ("train", "val") if s in datasets)
        folder = Path(trainer.log_dir or trainer.default_root_dir)
        name = f"feature_cache_rank{trainer.global_rank}"
        rank_zero_info(pl_module.features.open(self.mode, num_images, self.dtype, folder, name))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._drop_when_fine_tuning(pl_module)  # the epoch is known now, also when a run resumes

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._drop_when_fine_tuning(pl_module)

    @staticmethod
    def _drop_when_fine_tuning(pl_module: L.LightningModule) -> None:
        if not pl_module.encoder_waits() and pl_module.features.cache is not None:
            rank_zero_info(f"epoch {pl_module.current_epoch}: fine-tuning the encoder; its feature cache is dropped")
            rank_zero_info(pl_module.features.close())

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        report = pl_module.features.close()
        if report:
            rank_zero_info(report)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        pl_module.features.close()  # a disk cache's file is removed
