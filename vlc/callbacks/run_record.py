"""What reproduces a run and how it went, written into its log folder: ``config.yaml`` and ``run.yaml``."""

import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import datetime
from importlib import metadata
from pathlib import Path

import lightning as L
import yaml
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.utilities.exceptions import SIGTERMException

from vlc.errors import Diverged, UserError, warn
from vlc.runs import RUN_FILE, log_dir, read_run
from vlc.tasks.hparams import experiment_hparams, log_final_hparams

PACKAGES = ("vlc", "torch", "torchvision", "lightning", "torchmetrics", "numpy", "pillow")


def package_versions() -> dict[str, str]:
    """Python's and the installed versions of the packages a run's numbers depend on."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def git_state(folder: Path) -> dict | None:
    """The commit of the git checkout holding ``folder`` and whether it has uncommitted changes (None outside one)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=5)
        status = subprocess.run(["git", "status", "--porcelain"], cwd=folder, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if commit.returncode != 0:
        return None
    return {"commit": commit.stdout.strip(), "uncommitted_changes": bool(status.stdout.strip())}


def outcome(exception: BaseException) -> str:
    """The status a session ends with after ``exception``."""
    if isinstance(exception, SIGTERMException):
        return "interrupted"
    if isinstance(exception, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exception, Diverged):
        return "diverged"
    return "failed"


def _log_dir(trainer: L.Trainer) -> Path | None:
    """The run's log folder as :func:`vlc.runs.log_dir` gives it, read by this process alone (that is collective).

    None when the logger has no folder yet (MLflow, WandB: no run before the first log).
    """
    logger = trainer.logger
    folder = getattr(logger, "log_dir", None)
    return Path(folder) if folder else None


class _Dumper(yaml.SafeDumper):
    """Lists of plain values on one line (class names, versions), everything else in block style."""

    def represent_list(self, value: list):
        flow = all(not isinstance(item, (dict, list)) for item in value)
        return self.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


_Dumper.add_representer(list, _Dumper.represent_list)


class RunRecord(SaveConfigCallback):
    """Saves the resolved ``config.yaml`` and keeps ``run.yaml`` up to date in the run's log folder.

    ``run.yaml`` holds what the config does not: the command, the seed, the values linked from the data (class
    names, vocabulary size), the package versions, the git commit of vlc's source when it is a checkout, and one
    entry per session (start, duration, how it ended: ``running``, ``complete``, ``interrupted``, ``diverged``,
    ``failed``; a session killed outright stays ``running``). A resumed run adds a session to the same file. A run
    stopped during set-up, before this callback's ``setup`` (the data module's comes first: a cache build, a bad
    image), is recorded too, with its stage and 0 epochs. Nothing is written without a logger (``vlc predict``).

    At the end of a fit it logs the experiment's hyper-parameters (:func:`vlc.tasks.hparams.experiment_hparams`)
    with the final scores: TensorBoard's HParams tab.

    Args:
        parser: the CLI's parser (saves ``config.yaml``).
        config: the parsed config of the subcommand.
        command: the command line, recorded as typed.
        linked: the model arguments that the CLI links from the data module (recorded; a vocabulary by its size).
        **kwargs: ``SaveConfigCallback``'s options (``overwrite``, ...).
    """

    def __init__(self, parser, config, command: list[str] | None = None, linked: tuple = (), **kwargs) -> None:
        super().__init__(parser, config, **kwargs)
        self.command, self.linked = command or [], linked
        self.record: dict = {}
        self.folder: Path | None = None
        self.write_failed = False
        self.started = time.monotonic()
        self.training = False  # until training starts, a resumed run's epochs are its checkpoint's, not yet restored

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.logger is None:  # prediction: no run folder, nothing to record
            return
        self.folder = log_dir(trainer)  # every rank: a collective call under DDP
        if self.already_saved:
            return
        if trainer.is_global_zero:  # SaveConfigCallback.setup, into vlc's folder (MLflow's and WandB's have none)
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                path = self.folder / self.config_filename
                self.parser.save(self.config, path, skip_none=False, overwrite=self.overwrite, multifile=self.multifile)
            except OSError as err:  # a full disk or a file-size limit: stop before any work, in one line
                raise UserError(
                    f"cannot write the run's config.yaml into {self.folder}/ ({err.strerror or err})"
                ) from None
            self.save_config(trainer, pl_module, stage)
            self.already_saved = True
        self.already_saved = trainer.strategy.broadcast(self.already_saved)

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._start(trainer, pl_module, stage)
        self._write(trainer)

    def _start(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """A new session in the record (a resumed run adds one to its ``run.yaml``), ``running``."""
        hparams = pl_module.hparams
        linked = {key: hparams[key] for key in self.linked if hparams.get(key) is not None}
        if "vocab" in linked:
            linked["vocab"] = f"{len(linked['vocab'].get('words', []))} words (vocab.json)"
        stage = str(stage.value if hasattr(stage, "value") else stage)
        previous = read_run(self.folder) if stage == "fit" else {}
        session = {
            "command": shlex.join(["vlc", *self.command]),
            "started": datetime.now().isoformat(timespec="seconds"),
            "seconds": 0.0,
            "status": "running",
            "checkpoint": self.config.get("ckpt_path"),
        }
        self.record = {
            "stage": stage,
            "task": type(pl_module).__name__,
            "kind": getattr(pl_module, "KIND", None),  # classification or captioning, read by vlc compare
            "status": "running",
            "epochs": previous.get("epochs", 0),
            "steps": previous.get("steps", 0),
            "seed": int(os.environ.get("PL_GLOBAL_SEED", 0)),
            "precision": getattr(trainer, "precision_choice", None) or trainer.precision,
            "linked": linked,
            "sessions": [*previous.get("sessions", []), session],
            "versions": package_versions(),
            "git": git_state(Path(__file__).parent),
            "platform": f"{platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs), {sys.platform}",
        }
        self.started = time.monotonic()

    # -- progress and outcome --------------------------------------------------------------------------------
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.training = True

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._update(trainer, "running")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """The experiment's hyper-parameters with its final scores, to TensorBoard's HParams tab (to compare runs)."""
        log_final_hparams(trainer, experiment_hparams(self.config))

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if self.folder is None and trainer.is_global_zero:  # stopped before setup (the data's): still recorded
            folder = _log_dir(trainer)
            if folder is not None and folder.is_dir():
                self.folder = folder
                self._start(trainer, pl_module, trainer.state.fn)
        self._update(trainer, outcome(exception))

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.record.get("status") == "running":
            self._update(trainer, "complete")

    def _update(self, trainer: L.Trainer, status: str) -> None:
        if not self.record or not trainer.is_global_zero:
            return
        session = self.record["sessions"][-1]
        session["seconds"] = round(time.monotonic() - self.started, 1)
        session["status"] = self.record["status"] = status
        if self.record["stage"] == "fit" and self.training:
            self.record["epochs"] = trainer.fit_loop.epoch_progress.current.processed
            self.record["steps"] = trainer.global_step
        self._write(trainer)

    def _write(self, trainer: L.Trainer) -> None:
        if not trainer.is_global_zero or self.folder is None:
            return
        path = self.folder / RUN_FILE
        temporary = path.with_suffix(".tmp")
        try:
            temporary.write_text(yaml.dump(self.record, Dumper=_Dumper, sort_keys=False, width=120))
            os.replace(temporary, path)
        except OSError as err:  # a record is not worth stopping the run for (a checkpoint write will say more)
            if not self.write_failed:
                warn(f"cannot write {path} ({err.strerror or err}); the run goes on")
            self.write_failed = True
