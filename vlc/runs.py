"""Where a run lives on disk, in one place.

An experiment is named by its logger (``trainer.logger.init_args.name``; MLflow's ``experiment_name``, WandB's
``project``); with a list of loggers, by the first::

    logs/<experiment>/version_<n>/         the logger's folder: TensorBoard events (or metrics.csv), config.yaml,
                                           run.yaml (every TensorBoard and CSV logger of a run shares it)
    logs/<experiment>/<run id>/            config.yaml and run.yaml of a run whose first logger keeps no folder
                                           (MLflow, WandB: :func:`log_dir`); their own files are where they put them
        validate/, test/                   the evaluations of this run's checkpoints (``vlc validate``/``vlc test``)
    checkpoints/<experiment>/version_<n>/  last.ckpt and best-*.ckpt (``vlc.callbacks.Checkpoint``)
    checkpoints/version_<n>/               the checkpoints of a run without a logger (``logger: false``)

Each checkpoint records its run's name and version, so a resumed run continues its own logs and an evaluation is
filed under the run it evaluated (``vlc.checkpoints.run_of``).
"""

import csv
import math
from pathlib import Path

import lightning as L
import yaml
from jsonargparse import Namespace
from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger

CHECKPOINTS = Path("checkpoints")
LOGS = Path("logs")
"""Where vlc keeps a run's files when its first logger keeps no folder of its own (MLflow, WandB)."""
LAST = "last.ckpt"
RUN_FILE = "run.yaml"
"""What a run did and how it went (``vlc.callbacks.RunRecord``), beside its ``config.yaml``."""
EVENTS = "events.out.tfevents.*"
METRICS = "metrics.csv"
"""The files that make a folder a run's logs (TensorBoard's, the CSV logger's)."""
STAGES = ("validate", "test")
"""The sub-folders of a run's logs that hold its evaluations."""
FOLDER_LOGGERS = ("TensorBoardLogger", "CSVLogger")
"""The loggers that keep a run in a ``<save_dir>/<name>/<version>`` folder of their own."""
NAME_ARGS = {"MLFlowLogger": "experiment_name", "WandbLogger": "project"}
"""The ``init_args`` key naming the experiment, for the loggers whose key is not ``name``."""


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
    """``{"name": experiment, "version": version folder}`` of the run ``trainer`` logs as (None without a logger).

    The first logger's: TensorBoard's and CSV's name and version folder, WandB's project and run id, MLflow's
    experiment name and run id.
    """
    logger = trainer.logger
    if logger is None:
        return None
    version = logger.version if isinstance(logger.version, str) else f"version_{logger.version}"
    name = logger.name
    if isinstance(logger, MLFlowLogger) and trainer.is_global_zero:  # its name is the experiment's id
        experiment = logger.experiment.get_experiment(logger.experiment_id)
        name = experiment.name
    return {"name": str(name), "version": version}


def log_dir(trainer: L.Trainer) -> Path:
    """The run's log folder, where ``config.yaml`` and ``run.yaml`` go; call it on every process (it broadcasts).

    A TensorBoard or CSV logger's folder (``trainer.log_dir``); for a first logger that keeps no folder (MLflow,
    WandB) ``logs/<name>/<run id>``, and ``logs/<name>/<run id>/<stage>`` when it validates or tests.
    """
    logger = trainer.logger
    if isinstance(logger, (TensorBoardLogger, CSVLogger)):
        return Path(trainer.log_dir)
    run = run_name(trainer) if trainer.is_global_zero else None
    folder = LOGS / run["name"] / run["version"] if run else None
    stage = trainer.state.fn.value if trainer.state.fn else None
    if folder is not None and stage in STAGES:
        folder = folder / stage
    return Path(trainer.strategy.broadcast(str(folder) if folder else None))


def checkpoint_folder(config: Namespace) -> Path:
    """Where a parsed config's runs keep their checkpoints: ``checkpoints/<experiment>`` or a fixed ``dirpath``."""
    for callback in config.trainer.get("callbacks") or []:
        args = callback.get("init_args") if isinstance(callback, Namespace) else None
        if args is not None and "Checkpoint" in callback.class_path and args.get("dirpath"):
            return Path(args.dirpath)
    logger = config.trainer.get("logger")
    logger = logger[0] if isinstance(logger, list) and logger else logger  # the run is named by the first
    if isinstance(logger, Namespace):
        key = NAME_ARGS.get(kind(logger), "name")
        name = (logger.get("init_args") or {}).get(key) or "lightning_logs"  # Lightning's default name
    else:
        name = "lightning_logs" if logger is True else None  # false: no logger, no run names
    return experiment_folder(name)


def kind(logger: Namespace) -> str:
    """The class name of a logger's config (``TensorBoardLogger``)."""
    return logger.class_path.rsplit(".", 1)[-1]


def logger_configs(config: Namespace) -> list[Namespace]:
    """The loggers of a parsed config (``trainer.logger``: one or a list), as their ``class_path``/``init_args``."""
    logger = config.trainer.get("logger")
    loggers = logger if isinstance(logger, list) else [logger]
    return [item for item in loggers if isinstance(item, Namespace) and item.get("init_args") is not None]


def sharing_the_run(loggers: list[Namespace]) -> list[Namespace]:
    """The loggers of ``loggers`` that log as the run vlc records.

    The first, and with a TensorBoard or CSV logger first, the other TensorBoard and CSV loggers (which share its
    version folder: :func:`share_version`).
    """
    kinds = [kind(item) for item in loggers]
    if not kinds or kinds[0] not in FOLDER_LOGGERS:
        return loggers[:1]
    return [item for item, name in zip(loggers, kinds) if name in FOLDER_LOGGERS]


def continue_run(logger: Namespace, run: dict, command: str, step: int) -> None:
    """Make a logger's config log into the recorded ``run`` (``name``, ``version``) that ``command`` continues.

    A resumed fit continues the run (TensorBoard drops the events from ``step`` on, which the resumed session
    replaces); ``validate`` and ``test`` log into its ``validate/`` and ``test/`` sub-folders (TensorBoard's
    ``sub_dir``, the CSV logger's version folder) or, for MLflow and WandB, into the same run.
    """
    args, evaluating = logger.init_args, command in STAGES
    if kind(logger) == "MLFlowLogger":
        args.run_id = run["version"]
    elif kind(logger) == "WandbLogger":
        args.project, args.version = run["name"], run["version"]
    elif "name" in args and "version" in args:
        args.name, args.version = run["name"], run["version"]
        if evaluating and "sub_dir" in args:
            args.sub_dir = command
        elif evaluating:  # the CSV logger has no sub_dir: its version is the path below the experiment folder
            args.version = f"{run['version']}/{command}"
    if command == "fit" and "purge_step" in args:  # the resumed session replaces what followed it
        args.purge_step = step
    elif kind(logger) == "CSVLogger":
        folder = Path(args.get("save_dir") or ".") / (args.get("name") or "") / args.version
        keep_earlier_metrics(folder, step if command == "fit" else math.inf)


def keep_earlier_metrics(folder: Path, step: float) -> None:
    """Keep the rows before ``step`` of the ``metrics.csv`` in a CSV run's folder as ``metrics-<n>.csv``.

    Lightning's CSV logger deletes ``metrics.csv`` when a session reopens its folder (a resumed fit, another
    evaluation of the run); the rows of a fit from ``step`` on are those the resumed session replaces (as
    TensorBoard's ``purge_step`` drops them). ``vlc compare`` reads the sessions' files in order
    (:func:`metrics_files`).
    """
    metrics = folder / METRICS
    if not metrics.is_file():
        return
    with metrics.open(newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames or [], [row for row in reader if _step(row) < step]
    earlier = folder / f"metrics-{len(metrics_files(folder)) - 1}.csv"
    with earlier.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    metrics.unlink()


def _step(row: dict) -> float:
    try:
        return float(row.get("step") or 0)
    except ValueError:
        return 0.0


def metrics_files(folder: Path) -> list[Path]:
    """A CSV run's metrics files, oldest session first: ``metrics-0.csv``, ``metrics-1.csv``, ..., ``metrics.csv``."""
    earlier = [p for p in folder.glob("metrics-*.csv") if p.stem[8:].isdigit()]
    latest = [folder / METRICS] if (folder / METRICS).is_file() else []
    return [*sorted(earlier, key=lambda p: int(p.stem[8:])), *latest]


def share_version(config: Namespace) -> None:
    """Give every TensorBoard and CSV logger of a new run the first one's version folder (``version_<n>``).

    Each would otherwise number its own folder, one after the other: the CSV file apart from the run's events.
    """

    def root(args: Namespace) -> Path:
        return Path(args.get("save_dir") or ".") / (args.get("name") or "")

    folders = [item.init_args for item in logger_configs(config) if kind(item) in FOLDER_LOGGERS]
    same = [args for args in folders if root(args) == root(folders[0])] if folders else []
    if len(same) < 2 or any(args.get("version") is not None for args in same):
        return
    taken = [int(p.name[8:]) for p in root(same[0]).glob("version_*") if p.name[8:].isdigit()]
    for args in same:
        args.version = f"version_{max(taken, default=-1) + 1}"


def read_run(folder: str | Path) -> dict:
    """The ``run.yaml`` of a log folder, or ``{}`` when it has none (older runs) or it cannot be read."""
    try:
        return yaml.safe_load((Path(folder) / RUN_FILE).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
