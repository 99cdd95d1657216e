"""Helpers shared by the LightningModules: building the optimizer and a scheduler sized to the run."""

from typing import Any

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable


def configure(
    module: L.LightningModule,
    params: Any,
    optimizer: OptimizerCallable,
    scheduler: LRSchedulerCallable | None,
    interval: str = "step",
) -> Any:
    """Build ``optimizer(params)`` and, when given, ``scheduler(optimizer)`` for ``configure_optimizers``.

    A scheduler left without its length (``OneCycleLR`` with neither ``total_steps`` nor ``epochs``) gets
    the length of the run from the trainer, in steps or epochs following ``interval``, so that YAML never
    hard-codes it.
    """
    opt = optimizer(params)
    if scheduler is None:
        return opt
    length = module.trainer.estimated_stepping_batches if interval == "step" else module.trainer.max_epochs
    keywords = getattr(scheduler, "keywords", {})  # the init args jsonargparse parsed from YAML
    unsized = "total_steps" in keywords and keywords["total_steps"] is None and keywords.get("epochs") is None
    sched = scheduler(opt, total_steps=int(length)) if unsized else scheduler(opt)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": interval}}


def default_optimizer(params: Any) -> torch.optim.Optimizer:
    """AdamW at 1e-3: the optimizer used when a config names none."""
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05)
