"""Where a run lives on disk, in one place.

An experiment is named by its logger (``trainer.logger.init_args.name``)::

    logs/<experiment>/version_<n>/         the logger's folder: TensorBoard events (or metrics.csv), config.yaml,
                                           run.yaml
        validate/, test/                   the evaluations of this run's checkpoints (``vlc validate``/``vlc test``)
    checkpoints/<experiment>/version_<n>/  last.ckpt and best-*.ckpt (``vlc.callbacks.Checkpoint``)
    checkpoints/version_<n>/               the checkpoints of a run without a logger (``logger: false``)

Each checkpoint records its run's name and version, so a resumed run continues its own logs and an evaluation is
filed under the run it evaluated (``vlc.checkpoints.run_of``).
"""

from pathlib import Path

import lightning as L
import yaml
from jsonargparse import Namespace

CHECKPOINTS = Path("checkpoints")
LAST = "last.ckpt"
RUN_FILE = "run.yaml"
"""What a run did and how it went (``vlc.callbacks.RunRecord``), beside its ``config.yaml``."""
EVENTS = "events.out.tfevents.*"
METRICS = "metrics.csv"
"""The files that make a folder a run's logs (TensorBoard's, the CSV logger's)."""
STAGES = ("validate", "test")
"""The sub-folders of a run's logs that hold its evaluations."""


def experiment_folder(name: str | None) -> Path:
    """``checkpoints/<experiment>``: where the runs of an experiment (the logger's name) keep their checkpoints.

    Without a logger (``logger: false``) there are no run names: ``checkpoints/`` itself, which holds one
    ``version_<n>`` folder per run (:func:`new_unlogged_run`).
    """
    return CHECKPOINTS / name if name else CHECKPOINTS


def run_folder(name: str | None, version: str | None) -> Path:
    """``checkpoints/<experiment>/<version>``: the checkpoint folder of one run."""
    return experiment_folder(name) / version if name and version else experiment_folder(name)


def new_unlogged_run() -> Path:
    """A new, empty ``checkpoints/version_<n>`` for a run without a logger: the next number, claimed by creating it."""
    CHECKPOINTS.mkdir(parents=True, exist_ok=True)
    taken = [int(p.name[8:]) for p in CHECKPOINTS.glob("version_*") if p.name[8:].isdigit()]
    number = max(taken, default=-1) + 1
    while True:
        try:
            (CHECKPOINTS / f"version_{number}").mkdir()
            return CHECKPOINTS / f"version_{number}"
        except FileExistsError:  # another run took it meanwhile
            number += 1


def run_name(trainer: L.Trainer) -> dict[str, str] | None:
    """``{"name": experiment, "version": version folder}`` of the run ``trainer`` logs as (None without a logger)."""
    logger = trainer.logger
    if logger is None:
        return None
    version = logger.version if isinstance(logger.version, str) else f"version_{logger.version}"
    return {"name": str(logger.name), "version": version}


def checkpoint_folder(config: Namespace) -> Path:
    """Where a parsed config's runs keep their checkpoints: ``checkpoints/<experiment>`` or a fixed ``dirpath``."""
    for callback in config.trainer.get("callbacks") or []:
        args = callback.get("init_args") if isinstance(callback, Namespace) else None
        if args is not None and "Checkpoint" in callback.class_path and args.get("dirpath"):
            return Path(args.dirpath)
    logger = config.trainer.get("logger")
    if isinstance(logger, Namespace):
        name = (logger.get("init_args") or {}).get("name", "lightning_logs")  # Lightning's default name
    else:
        name = "lightning_logs" if logger is True else None  # false: no logger, no run names
    return experiment_folder(name)


def read_run(folder: str | Path) -> dict:
    """The ``run.yaml`` of a log folder, or ``{}`` when it has none (older runs) or it cannot be read."""
    try:
        return yaml.safe_load((Path(folder) / RUN_FILE).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
