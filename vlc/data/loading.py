"""DataLoaders whose randomness is a function of the run's seed and position, so that resumed runs are exact.

A training run interrupted at any moment and resumed from a checkpoint must see the same batches, in the same order,
with the same augmentation, as a run never interrupted. Three things make it so:

- the shuffled order of an epoch depends only on ``(seed, epoch)`` (:class:`EpochSampler`), and a run resumed in
  the middle of an epoch starts that epoch's order where the checkpoint left it;
- random choices made on a batch (augmentation, which reference caption to train on) draw from a generator seeded
  by ``(seed, batch index)`` (:func:`batch_generator`), never from the global random state;
- the global random state that the model uses (dropout) is re-seeded before every training batch
  (``vlc.callbacks.StepSeed``).
"""

import os
from collections.abc import Callable

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Sampler

from vlc.data.bad_images import SkipUnreadable


def run_seed() -> int:
    """The seed of the run (``seed_everything``, kept by Lightning in ``PL_GLOBAL_SEED``; 0 when unset)."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


def mix(*numbers: int) -> int:
    """One well-mixed 63-bit seed from several integers (``numpy.random.SeedSequence``)."""
    return int(np.random.SeedSequence([abs(int(n)) for n in numbers]).generate_state(2, np.uint64)[0] >> np.uint64(1))


class EpochSampler(Sampler[int]):
    """The indices ``0..n-1``, shuffled by ``(seed, epoch)`` alone (or in order), resumable in mid-epoch.

    Under DDP each process takes every ``world_size``-th index of the same order (padded like torch's
    ``DistributedSampler``): vlc's trainer has ``use_distributed_sampler: false`` (``vlc.cli.TRAINER_DEFAULTS``), so
    Lightning leaves it in place instead of wrapping it in a sampler of its own that reshuffles. Lightning calls
    :meth:`set_epoch` before each epoch. ``start_at``, when given, is
    asked once, when the first epoch is iterated (after Lightning has restored a checkpoint: the loader itself may be
    built before), for ``(epoch, indices of this process's share already consumed)``; the iteration starts after
    those.

    Args:
        n: dataset size.
        shuffle: shuffle each epoch; otherwise ``0..n-1`` in order.
        seed: the run's seed.
        start_at: where the first iteration starts, e.g. ``(1, 192)`` for a run resumed after 6 batches of 32
            in epoch 1.
    """

    def __init__(self, n: int, shuffle: bool, seed: int, start_at: Callable[[], tuple[int, int]] | None = None):
        # the ranks are read when iterating: the process group may not exist yet
        self.n, self.shuffle, self.seed, self.start_at, self.epoch = n, shuffle, seed, start_at, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @staticmethod
    def ranks() -> tuple[int, int]:
        """``(rank, world size)`` of this process (``(0, 1)`` without DDP)."""
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    def order(self) -> torch.Tensor:
        """This epoch's order of this process's share."""
        order = torch.arange(self.n)
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(mix(self.seed, self.epoch)))
        rank, world = self.ranks()
        order = torch.cat([order, order[: len(self) * world - self.n]])  # every process gets as many
        return order[rank::world]

    def __iter__(self):
        start = 0
        if self.start_at is not None:  # the first iteration of a run
            self.epoch, start = self.start_at()
            self.start_at = None
        # the consumed indices move to the end: Lightning, which counts a resumed epoch's batches from where it
        # stopped, ends the epoch before reaching them
        return iter(self.order().roll(-start).tolist())

    def __len__(self) -> int:
        return -(-self.n // self.ranks()[1])


def resume_position(trainer: L.Trainer) -> tuple[int, int]:
    """``(epoch, batches of it done)`` at the start of ``fit``: ``(0, 0)`` for a fresh run.

    Read from Lightning's progress counters, which a resumed run has restored from its checkpoint before the
    training loader is first iterated.
    """
    epochs, batches = trainer.fit_loop.epoch_progress.current, trainer.fit_loop.epoch_loop.batch_progress
    if epochs.processed < epochs.ready and not batches.is_last_batch:  # saved inside epoch `processed`
        return epochs.processed, batches.current.completed
    return epochs.ready, 0  # a fresh run, or one saved at the end of an epoch (after or before Lightning counted it)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    num_workers: int,
    shuffle: bool = False,
    trainer: L.Trainer | None = None,
    collate_fn: Callable | None = None,
    drop_last: bool = False,
) -> DataLoader:
    """A DataLoader over ``dataset``; for training (``shuffle``) its order resumes where ``trainer`` stopped.

    Items the dataset could not read are left out of their batch and passed beside it (``vlc.data.bad_images``).

    The loader's own generator is seeded too, so that creating an iterator never draws from the global random
    state (the worker processes' seeds come from it).
    """
    seed = run_seed()

    def start_at() -> tuple[int, int]:
        epoch, done = resume_position(trainer)
        return epoch, done * batch_size

    sampler = EpochSampler(len(dataset), shuffle, seed, start_at if shuffle and trainer is not None else None)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        collate_fn=SkipUnreadable(collate_fn),
        drop_last=drop_last,
        generator=torch.Generator().manual_seed(seed),
    )


def agreed(trainer: L.Trainer | None, value):
    """``value`` as process 0 has it, on every process (under DDP; itself otherwise).

    For decisions each process makes from its own view of the machine (free memory), which must be the same.
    """
    if trainer is None or trainer.world_size == 1:
        return value
    return trainer.strategy.broadcast(value, src=0)


def batch_generator(trainer: L.Trainer, device: torch.device) -> torch.Generator:
    """A generator for the random choices made on the training batch being transferred to ``device``.

    Seeded by the run's seed, the batch's index since the start of training and the process rank; called from
    ``on_after_batch_transfer``, before Lightning counts the batch as started.
    """
    index = trainer.fit_loop.epoch_loop.batch_progress.total.ready
    return torch.Generator(device).manual_seed(mix(run_seed(), index, trainer.global_rank, 1))
