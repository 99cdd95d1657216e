"""``VlcCLI``: one experiment (a config's model, data and trainer) built by LightningCLI and run by one command.

LightningCLI parses and instantiates (``run=False``: vlc dispatches its commands itself, so only the chosen
command's parser is built). Its public hooks add vlc's parts: ``add_arguments_to_parser`` (``--ckpt_path``, the
data-to-model links, predict's ``writer``), ``parse_arguments`` (the checkpoint, ``vlc.cli.from_checkpoint``),
``before_instantiate_classes`` (checks, run folders, default callbacks) and ``after_instantiate_classes``
(the checkpoint fits the model, pre-trained files read); :meth:`VlcCLI.run` calls the trainer under vlc's signal
handling and prints the hints of ``vlc.cli.hints``.
"""

import logging
import sys
import warnings
from pathlib import Path

from jsonargparse import Namespace
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from vlc import checkpoints, loggers, runs
from vlc.callbacks.bad_image_check import BadImageCheck
from vlc.callbacks.divergence import StopOnDivergence
from vlc.callbacks.interruption import EXIT_CODES, Interruption, progress, spawned
from vlc.callbacks.prediction_writer import PredictionWriter
from vlc.callbacks.run_record import RunRecord
from vlc.callbacks.same_checkpoint import SameCheckpoint
from vlc.callbacks.step_seed import StepSeed
from vlc.callbacks.time_budget import TimeBudget
from vlc.checks import check_optimizer, check_trainer_numbers, check_writable
from vlc.cli import from_checkpoint, hints
from vlc.cli.parser import VlcArgumentParser
from vlc.data.modules.base import ImageDataModule
from vlc.tasks.base import Task
from vlc.trainer import Trainer

LINKED = ("num_classes", "class_names", "vocab")
"""Data module attributes passed to the model's ``__init__`` arguments of the same name."""

TRAINER_DEFAULTS = {
    "logger": {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": "logs", "name": "default", "default_hp_metric": False},
    },
    "accelerator": "auto",
    "devices": 1,
    "log_every_n_steps": 10,
    "enable_model_summary": False,  # vlc prints its own parameter counts (Lightning's: FLOPs of zero under bf16)
    "use_distributed_sampler": False,  # vlc's loaders split the data between processes (vlc.data.loading.EpochSampler)
}
"""Trainer settings a config does not give. An experiment names its run once, ``trainer.logger.init_args.name``
(its logs and checkpoints folder); the callbacks every run gets are added in :func:`build`, and a fit's
``Checkpoint`` and ``LearningRateMonitor`` in ``before_instantiate_classes`` unless the config lists its own."""

TRAINER_CALL_ARGS = {"predict": {"return_predictions": False}, "validate": {"verbose": False}}
TRAINER_CALL_ARGS["test"] = TRAINER_CALL_ARGS["validate"]
"""What the trainer method gets besides model, data and checkpoint: predictions are written, not kept; scores are
printed rounded by ``vlc.cli.hints.scores``, not in Lightning's table."""

CKPT_HELP = (
    "the checkpoint to start from: a .ckpt file, a run or experiment folder (its newest run's last.ckpt), "
    "'last' (the newest run's last.ckpt of this config's experiment), 'best' (its best checkpoint) or, for fit, "
    "'auto' (last if there is one, else from scratch)"
)

QUIET = (
    r"Checkpoint directory .* exists and is not empty",
    r"Experiment logs directory .* exists and is not empty",  # CSV: vlc kept metrics.csv (runs.keep_earlier_metrics)
    r".*does not have many workers",  # workers compete with training for the cores
    r"Found \d+ module\(s\) in eval mode",  # frozen batch norms: intended
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",  # raised inside Lightning's utilities/_pytree.py
)
QUIET_EVALUATING = (
    r"Be aware that when using `ckpt_path`, callbacks used to create",  # evaluating needs none of them
    # the checkpoint's state_dict already holds the averaged weights, which is what is evaluated
    r"You're using the WeightAveraging callback, but loading",
)
"""Lightning warnings about what vlc does on purpose (the second group when validating, testing or predicting)."""


class NoTips(logging.Filter):
    """Drops Lightning's advertisements (``💡 Tip: ... try installing litlogger``): nothing a run needs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(NoTips())


class VlcCLI(LightningCLI):
    """LightningCLI for one vlc command (``fit``, ``validate``, ``test``, ``predict``) on one experiment config.

    Args:
        command: the trainer method the command runs.
        args: the options after the command (``--config FILE``, ``--model.init_args.x``, ...).
        interruption: the run's signal handler, one of its callbacks.
        help_only: stop once the config is parsed, raising ``vlc.cli.help.Parsed`` (``--help``).
        **kwargs: LightningCLI's arguments.
    """

    def __init__(
        self, command: str, args: list[str], interruption: Interruption, help_only: bool = False, **kwargs
    ) -> None:
        self.command, self.args, self.interruption, self.help_only = command, args, interruption, help_only
        self.checkpoint: dict | None = None
        super().__init__(args=args, run=False, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--ckpt_path", type=str | None, default=None, help=CKPT_HELP)
        if self.command == "predict":  # the class names come from the checkpoint, not from data
            parser.add_lightning_class_args(PredictionWriter, "writer")
            return
        for key in LINKED:  # a link whose source or target does not exist is skipped
            parser.link_arguments(f"data.{key}", f"model.init_args.{key}", apply_on="instantiate")

    def parse_arguments(self, parser: LightningArgumentParser, args: list[str]) -> None:
        """Parse ``args``, then resolve and read ``--ckpt_path`` and apply its hyper-parameters."""
        self.config = parser.parse_args(args)
        if self.help_only:
            from vlc.cli.help import Parsed

            raise Parsed(parser, self.config)
        self.checkpoint = from_checkpoint.load(self.config, self.command)
        if self.checkpoint is not None:
            path = self.config.ckpt_path
            linked = LINKED if self.command != "predict" else ()
            model = self.config.model.class_path
            self.config = from_checkpoint.apply_hyperparameters(parser, args, model, self.checkpoint, path, linked)
            self.config.ckpt_path = path

    # -- checks and run folders, before anything is built -------------------------------------------------------
    def before_instantiate_classes(self) -> None:
        config = self.config
        check_trainer_numbers(config.trainer.as_dict())
        if self.command == "predict":
            for key in ("output", "submission"):
                if config.writer.get(key):
                    check_writable(Path(config.writer[key]).parent, f"writer.{key}")
            return
        logged = runs.logger_configs(config)
        for logger in logged:
            if logger.init_args.get("save_dir"):
                check_writable(logger.init_args.save_dir, "trainer.logger.init_args.save_dir")
        if self.command == "fit":
            check_writable(runs.checkpoint_folder(config), "the checkpoint folder")
            add_default_callbacks(config)
        run = checkpoints.run_of(self.checkpoint) if self.checkpoint else None
        if run is None:
            runs.share_version(config)
            return
        for logger in runs.sharing_the_run(logged):
            runs.continue_run(logger, run, self.command, self.checkpoint.get("global_step", 0))

    def after_instantiate_classes(self) -> None:
        for callback in self.trainer.callbacks:
            if isinstance(callback, SameCheckpoint):  # the processes of a multi-node run check they agree
                callback.path = self.config.ckpt_path
        if self.checkpoint is not None:
            checkpoints.check_fits(self.model, self.checkpoint, self.config.ckpt_path)
        if self.command == "test" and isinstance(self.datamodule, ImageDataModule):
            self.datamodule.check_test_set()  # before the logger opens a run folder for the test
        if self.command != "fit":
            return
        if callable(getattr(self.model, "optimizer", None)):  # torch checks its values: a bad one stops here
            check_optimizer(self.model.optimizer, [p for p in self.model.parameters() if p.requires_grad])
        if self.checkpoint is None and isinstance(self.model, Task):
            self.model.load_pretrained()  # before any data is loaded: a missing file or download stops at once

    # -- running: signals, exit codes and hints ------------------------------------------------------------------
    def run(self) -> None:
        """Run the command's trainer method; on a signal, say where it stopped and exit 130 or 143."""
        with warnings.catch_warnings(), self.interruption as stop:
            for message in QUIET + (QUIET_EVALUATING if self.command != "fit" else ()):
                warnings.filterwarnings("ignore", message)
            stop.watch(self.trainer, training=self.command == "fit")
            method = getattr(self.trainer, self.command)
            extra = TRAINER_CALL_ARGS.get(self.command, {})
            try:
                results = method(self.model, datamodule=self.datamodule, ckpt_path=self.config.ckpt_path, **extra)
            except (SystemExit, KeyboardInterrupt):
                if stop.signal is None:
                    raise
                if self.trainer.is_global_zero:
                    stopped = self.interruption.stopped or progress(self.trainer)  # ddp_spawn: the workers'
                    hints.interrupted(stop.signal, stopped, self.command, self.args)
                raise SystemExit(EXIT_CODES[stop.signal]) from None
            finally:
                loggers.finish(self.trainer)
        if self.command in ("validate", "test") and self.trainer.is_global_zero:
            hints.scores(results)
        if self.command == "fit":
            hints.after_fit(self.trainer, self.model, self.datamodule, self.args, spawned(self.trainer))


def add_default_callbacks(config: Namespace) -> None:
    """A ``Checkpoint`` ranking by the task's ``MONITOR`` and, with a logger, a ``LearningRateMonitor``."""
    callbacks = list(config.trainer.get("callbacks") or [])
    given = {c.class_path.rsplit(".", 1)[-1] for c in callbacks if isinstance(c, Namespace)}
    task = checkpoints.import_class(config.model.class_path)
    if not given & {"Checkpoint", "ModelCheckpoint"} and hasattr(task, "MONITOR"):
        monitor, mode, filename = task.monitor_for(config.model.get("init_args") or {})
        args = Namespace(monitor=monitor, mode=mode, filename=filename, save_top_k=1, dirpath=None)
        callbacks.append(Namespace(class_path="vlc.callbacks.Checkpoint", init_args=args))
    if "LearningRateMonitor" not in given and config.trainer.get("logger") not in (None, False):
        args = Namespace(logging_interval="step", log_momentum=False, log_weight_decay=False)
        callbacks.append(Namespace(class_path="lightning.pytorch.callbacks.LearningRateMonitor", init_args=args))
    config.trainer.callbacks = callbacks


def build(command: str, args: list[str], help_only: bool = False) -> VlcCLI:
    """The experiment of ``vlc COMMAND ARGS``, parsed, checked and instantiated (not run)."""
    interruption = Interruption()
    always = [
        interruption,
        StepSeed(),
        StopOnDivergence(),
        TimeBudget(),
        BadImageCheck(),
        SameCheckpoint(),
    ]  # fresh ones for every run; a task adds its own (configure_callbacks)
    return VlcCLI(
        command,
        args,
        interruption,
        help_only,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        trainer_defaults={**TRAINER_DEFAULTS, "callbacks": always},
        save_config_callback=RunRecord,
        save_config_kwargs={"overwrite": True, "command": [command, *args], "linked": LINKED},
        parser_class=VlcArgumentParser,
        parser_kwargs={"prog": f"{hints.program()} {command}"},
        auto_configure_optimizers=False,
        trainer_class=Trainer,
    )


def run(command: str, args: list[str]) -> None:
    """``vlc COMMAND ARGS`` for a trainer command."""
    build(command, args).run()
    sys.stdout.flush()
