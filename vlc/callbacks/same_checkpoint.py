"""Every process of a run starts from the same checkpoint (or none does): nodes that see different files stop."""

import os

import lightning as L
import torch.distributed as dist

from vlc.errors import UserError


class SameCheckpoint(L.Callback):
    """Stops a run, on every process with one line, when its processes resolved ``--ckpt_path`` to different files.

    Under torchrun or SLURM each process resolves ``--ckpt_path last``/``auto``/a folder in its own view of
    ``checkpoints/``. Nodes that do not share that folder would start from different states, silently: DDP gives
    every rank rank 0's weights, but each keeps its own step counters, schedule and position in the data (or starts
    afresh), so they no longer train one run.

    Attributes:
        path: the checkpoint file this process starts from, as the CLI resolved it (None: none).
    """

    def __init__(self) -> None:
        self.path: str | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
            return
        paths: list[str | None] = [None] * dist.get_world_size()
        dist.all_gather_object(paths, os.path.realpath(self.path) if self.path else None)
        if len(set(paths)) == 1:
            return
        ranks: dict[str | None, list[int]] = {}
        for rank, path in enumerate(paths):
            ranks.setdefault(path, []).append(rank)
        found = "; ".join(f"rank {', '.join(map(str, r))}: {path or 'none'}" for path, r in ranks.items())
        raise UserError(
            f"--ckpt_path: the processes of this run start from different checkpoints "
            f"({found}); every node must see the same checkpoints/ folder at the same path (a shared filesystem: "
            "docs/runs.md, Several machines)"
        )
