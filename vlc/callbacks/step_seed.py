"""Re-seeds the global random generators before every training batch, so that resumed runs are exact."""

import random

import lightning as L
import numpy as np
import torch

from vlc.data.loading import mix, run_seed


class StepSeed(L.Callback):
    """Seeds torch (every device), Python's ``random`` and numpy from ``(run seed, batch index, rank)``.

    What the model draws during a training step (dropout masks, anything random in ``training_step``) then depends
    on where the run is, not on what ran before: a run resumed from any checkpoint draws the same numbers as a run
    never interrupted, whatever validation, data loading or checkpointing did in between.
    """

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        seed = mix(run_seed(), trainer.fit_loop.total_batch_idx, trainer.global_rank, 2)
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
