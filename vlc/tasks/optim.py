"""Helpers shared by the LightningModules: building the optimizer and a scheduler sized to the run."""

import math
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Timer
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from vlc.errors import UserError


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
    hard-codes it (use ``vlc.tasks.OneCycleLR``: torch's fails on very short runs and on resumed runs). A
    parameter group with an ``lr_scale`` key (see ``param_groups``) gets its learning rate,
    and its share of a scalar ``max_lr``, multiplied by it, and one with a ``weight_decay_scale`` key its weight
    decay. ``ReduceLROnPlateau`` steps once per epoch on the task's
    ``MONITOR`` score (the captioner's validation BLEU-4, with ``mode: max``).
    """
    opt = optimizer(params)
    for group in opt.param_groups:
        group["lr"] *= group.get("lr_scale", 1.0)
        if "weight_decay_scale" in group:
            group["weight_decay"] *= group["weight_decay_scale"]
    if scheduler is None:
        return opt
    keywords = getattr(scheduler, "keywords", {})  # the init args jsonargparse parsed from YAML
    overrides = {}
    if "total_steps" in keywords and keywords["total_steps"] is None and keywords.get("epochs") is None:
        overrides["total_steps"] = run_length(module.trainer, interval)
    max_lr = keywords.get("max_lr")
    if isinstance(max_lr, (int, float)) and any("lr_scale" in g for g in opt.param_groups):
        overrides["max_lr"] = [max_lr * g.get("lr_scale", 1.0) for g in opt.param_groups]
    sched = scheduler(opt, **overrides)
    if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):  # decays when the task's score stalls
        metric, mode, _ = module.MONITOR
        if sched.mode != mode:
            raise UserError(f"model.scheduler: ReduceLROnPlateau follows {metric}, which needs mode: {mode}")
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch", "monitor": metric}}
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": interval}}


PROVISIONAL_STEPS = 1_000_000
"""The length of a step-wise schedule whose run only has a time budget, until ``TimeBudget`` sizes it."""


def run_length(trainer: L.Trainer, interval: str) -> int:
    """The number of scheduler steps in the run (optimizer steps, or epochs), at least 1.

    A run with ``max_time`` but neither ``max_epochs`` nor ``max_steps`` gets :data:`PROVISIONAL_STEPS`, which
    ``vlc.callbacks.TimeBudget`` replaces with what fits in the budget after the first steps.

    Raises:
        UserError: the run has no set length (``max_epochs: -1`` without ``max_steps`` or ``max_time``).
    """
    length = trainer.estimated_stepping_batches if interval == "step" else trainer.max_epochs
    budget = any(isinstance(cb, Timer) and cb.time_remaining() is not None for cb in trainer.callbacks)
    if interval == "step" and math.isinf(length) and budget:
        return PROVISIONAL_STEPS
    if length is None or length < 0 or math.isinf(length):
        needed = "trainer.max_epochs or trainer.max_steps" if interval == "step" else "trainer.max_epochs"
        raise UserError(
            f"model.scheduler: a schedule sized to the run needs its length: set {needed} (or the scheduler's "
            "total_steps)"
        )
    return max(1, int(length))


def default_optimizer(params: Any) -> torch.optim.Optimizer:
    """AdamW at 1e-3: the optimizer used when a config names none."""
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05)


def zero_loss(module: L.LightningModule) -> torch.Tensor:
    """A loss of 0 that reaches every trainable parameter, for a step with nothing to learn from.

    A batch of which no image could be read still takes part in DDP's gradient synchronisation, with zero
    gradients (returning None would leave the other processes waiting).
    """
    return sum(p.sum() for p in module.parameters() if p.requires_grad) * 0.0


BATCH_NORMS = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.LazyBatchNorm1d,
    nn.LazyBatchNorm2d,
    nn.LazyBatchNorm3d,
)
"""torch's batch norms (their private base class ``_BatchNorm`` named by its public subclasses)."""


def param_groups(
    module: nn.Module, lr_scale: float = 1.0, backbone: str = "backbone", norm_bias_lr_scale: float = 1.0
) -> list:
    """The trainable parameters of ``module`` for the optimizer, in groups when a scale is not 1.

    Two rules, each applied only when its scale is not 1:

    - ``lr_scale``: the trainable parameters of the image backbone (the attribute ``backbone``) form the group
      ``pretrained``, which carries ``lr_scale``; the others (the classifier's head, the captioner's decoder) form
      ``head``.
    - ``norm_bias_lr_scale``: the biases of the batch norms form a group of their own (``norm_bias``, or
      ``head.norm_bias`` and ``pretrained.norm_bias`` under the first rule) whose ``lr_scale`` is multiplied by
      ``norm_bias_lr_scale`` and which carries ``weight_decay_scale = 1 / norm_bias_lr_scale``: their weight decay
      per step (learning rate x decay) stays that of the others, as with airbench's bias scaler (Jordan 2024). The
      other parameters are then ``other`` when the first rule does not split them.

    :func:`configure` applies ``lr_scale`` to a group's learning rate (and to ``OneCycleLR``'s ``max_lr``) and
    ``weight_decay_scale`` to its weight decay.
    """
    trainable = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
    if lr_scale == 1.0 and norm_bias_lr_scale == 1.0:
        return [p for _, p in trainable]
    norm_biases = {id(m.bias) for m in module.modules() if isinstance(m, BATCH_NORMS)}

    def group_of(name: str, param: nn.Parameter) -> tuple[str, dict]:
        in_backbone = name.startswith(backbone + ".")
        scale = lr_scale if in_backbone else 1.0
        part = ("pretrained" if in_backbone else "head") if lr_scale != 1.0 else ""
        if norm_bias_lr_scale != 1.0 and id(param) in norm_biases:
            scales = {"lr_scale": scale * norm_bias_lr_scale, "weight_decay_scale": 1 / norm_bias_lr_scale}
            return f"{part}.norm_bias".lstrip("."), scales
        return part or "other", {"lr_scale": scale} if scale != 1.0 else {}

    groups: dict[str, dict] = {}
    for name, param in sorted(trainable, key=lambda item: item[0].startswith(backbone + ".")):  # the head first
        part, scales = group_of(name, param)
        groups.setdefault(part, {"params": [], "name": part, **scales})["params"].append(param)
    return list(groups.values())
