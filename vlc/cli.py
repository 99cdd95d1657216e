"""The ``vlc`` command: LightningCLI subcommands (fit, validate, test, predict) plus ``vlc data`` and ``vlc compare``.

Every experiment is one YAML file naming a model and a data module by ``class_path``. The data module is the
source of truth for the class names, linked into the model and stored in its checkpoints; ``vlc predict``
takes them from the checkpoint, so prediction needs no dataset.

Before any work, the CLI resolves and checks ``--ckpt_path`` (``vlc.checkpoints``), checks numbers and output
folders (``vlc.checks``) and, for a checkpoint of a known run, points the logger at that run: ``fit`` continues
its TensorBoard run, ``validate``/``test`` log into its ``validate/``/``test/`` sub-folder.
"""

import os
import re
import shlex
import sys
import warnings
from importlib import metadata
from pathlib import Path

from jsonargparse import Namespace
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.strategies.launchers import _MultiProcessingLauncher
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from vlc import checkpoints
from vlc.callbacks.bad_image_check import BadImageCheck
from vlc.callbacks.caption_baselines import CaptionBaselines
from vlc.callbacks.caption_files import CaptionSamples, VocabularyFile
from vlc.callbacks.divergence import StopOnDivergence
from vlc.callbacks.interruption import EXIT_CODES, Interruption, progress
from vlc.callbacks.prediction_writer import PredictionWriter
from vlc.callbacks.run_record import RunRecord
from vlc.callbacks.step_seed import StepSeed
from vlc.callbacks.time_budget import TimeBudget
from vlc.checks import check_config_files, check_optimizer, check_trainer_numbers, check_writable
from vlc.errors import UserError, find_user_error
from vlc.tasks.base import Task

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
"""The example configs of a source checkout (what ``pip install -e .`` installs from)."""

LINKED = ("num_classes", "class_names", "vocab")
"""Data module attributes passed to the model's ``__init__`` arguments of the same name."""

TRAINER_DEFAULTS = {
    "logger": {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": "logs", "name": "default", "default_hp_metric": False},
    },
    "accelerator": "auto",
    "devices": 1,
    "precision": "bf16-mixed",
    "log_every_n_steps": 10,
    "use_distributed_sampler": False,  # vlc's loaders split the data between processes (vlc.data.loading.EpochSampler)
}
"""Trainer settings a config does not give. An experiment names its run once, ``trainer.logger.init_args.name``
(its logs and checkpoints folder); the callbacks every run gets are added in ``_cli``, and a fit's ``Checkpoint``
and ``LearningRateMonitor`` in ``VlcCLI.before_instantiate_classes`` unless the config lists its own."""

COMMANDS = {
    "fit": "train a model (--ckpt_path last|auto|FILE resumes a run)",
    "validate": "score a checkpoint on the validation data",
    "test": "score a checkpoint on the test data",
    "predict": "predict a folder of images with a checkpoint, to CSV or JSON",
    "compare": "a table of runs read from their logs (accuracy or caption scores, epochs, time, status)",
    "data": "prepare datasets on disk (vlc data tinyimagenet30 ...)",
}

NOISE = ("Does not validate against any", "Subtypes:", "Errors:", "- Expected a <class 'NoneType'>", "Given value")


RESTRICTION = re.compile(r"Not of type \w+: (?:(\S+) )?does not conform to restriction v([<>=]+)(\S+)")


def _one_line(message: str) -> str:
    """A nested jsonargparse report in one line: ``Parser key "data": - batch_size: ...`` -> ``data.batch_size: ...``.

    A number out of range (``PositiveInt``, ...) reads ``data.batch_size: expected a value > 0, got 0``.
    """
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    given = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Given value:")), "")
    text = " ".join(line for line in lines if not line.startswith(NOISE))
    keys = re.findall(r'Parser key "([^"]+)":\s*-?\s*', text)
    text = re.sub(r'Parser key "[^"]+":\s*-?\s*', "", text)
    nested = re.match(r"(\w+): (.*)", text)  # the error of one of a class's arguments: "batch_size: ..."
    if keys and nested:
        keys, text = [*keys, nested[1]], nested[2]
    text = RESTRICTION.sub(lambda m: f"expected a value {m[2]} {m[3]}, got {m[1] or given}", text)
    text = re.sub(r"expected v([<>=]+)(\S+),", r"expected a value \1 \2,", text)
    return f"{'.'.join(keys)}: {text}" if keys else text


class VlcArgumentParser(LightningArgumentParser):
    """A parser whose errors are one line for the user (jsonargparse prints the usage and a nested report).

    Options are never abbreviated: a misspelled ``--trainer.max_epoch`` is an unknown option, not ``max_epochs``.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})

    def error(self, message: str, ex: Exception | None = None):
        raise UserError(_one_line(message))


def _flat(value, prefix: str = "") -> dict:
    """A nested config as ``{dotted.key: value}`` (``init_args`` levels left out)."""
    if isinstance(value, Namespace):
        value = value.as_dict()
    if not isinstance(value, dict):
        return {prefix: value}
    out = {}
    for key, item in value.items():
        name = prefix if key == "init_args" else f"{prefix}.{key}" if prefix else key
        out.update(_flat(item, name))
    return out


def _stop_if_trained(checkpoint: dict, path: str, trainer: Namespace) -> None:
    """Exit (0) with one line when the checkpoint has reached ``trainer``'s ``max_epochs`` or ``max_steps``.

    Lightning would restore it and stop at once, after vlc had resized its schedule for steps that never run and
    opened a session in the run's logs and record for nothing.
    """
    steps = checkpoint.get("global_step", 0)
    epochs = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
    epochs = epochs.get("processed", 0)  # what Lightning's fit loop counts, a mid-epoch checkpoint included
    max_steps = -1 if trainer.get("max_steps") is None else trainer.max_steps
    max_epochs = trainer.get("max_epochs")
    max_epochs = (1000 if max_steps == -1 else -1) if max_epochs is None else max_epochs  # Lightning's defaults
    if 0 <= max_steps <= steps:
        limit = f"trainer.max_steps={max_steps}"
    elif 0 <= max_epochs <= epochs:
        limit = f"trainer.max_epochs={max_epochs}"
    else:
        return
    print(
        f"vlc: nothing to train: {path} has trained {epochs} epochs ({steps} steps), as far as {limit} goes; "
        "raise it to train on",
        file=sys.stderr,
    )
    raise SystemExit(0)


class VlcCLI(LightningCLI):
    """LightningCLI with vlc's links, defaults, checkpoint handling, signals and messages."""

    def __init__(self, *args, argv: list[str], interruption: Interruption, **kwargs) -> None:
        self.argv, self.interruption = argv, interruption
        self.checkpoint: dict | None = None
        super().__init__(*args, **kwargs)

    def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs) -> LightningArgumentParser:
        self._preparing = subcommand  # add_arguments_to_parser needs to know which subcommand it builds
        return super()._prepare_subcommand_parser(klass, subcommand, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        if self._preparing == "predict":  # the class names come from the checkpoint, not from data
            parser.add_lightning_class_args(PredictionWriter, "writer")
            return
        for key in LINKED:  # a link whose source or target does not exist is skipped
            parser.link_arguments(f"data.{key}", f"model.init_args.{key}", apply_on="instantiate")

    # -- the checkpoint: resolved, read once, checked, its hyper-parameters applied -------------------------------
    def _parse_ckpt_path(self) -> None:
        """Resolve, read and check ``--ckpt_path``, then apply its hyper-parameters (replaces LightningCLI's).

        ``last``/``best``/``auto`` and folders are resolved to a file, which is read once with one-line errors and
        checked for its task; its hyper-parameters then replace the model's arguments (as Lightning does), except
        the task's ``EVALUATION_ARGS`` given in the config or on the command line (how captions are decoded and
        scored), and the values given that they replace are listed.
        """
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        config = self.config[subcommand]
        path = checkpoints.resolve(config.get("ckpt_path"), self._checkpoint_folder(config), subcommand)
        config.ckpt_path = path
        if path in (None, "hpc"):
            if subcommand == "predict":
                raise UserError("vlc predict needs a trained model: pass --ckpt_path path/to/checkpoint.ckpt")
            return
        self.checkpoint = checkpoints.read(path)
        checkpoints.check_task(self.checkpoint, path, checkpoints.import_class(config.model.class_path), subcommand)
        if subcommand == "fit":
            _stop_if_trained(self.checkpoint, path, config.trainer)
        hparams = dict(self.checkpoint.get("hyper_parameters") or {})
        hparams.pop("_instantiator", None)
        if not hparams:
            return
        given = _flat(self._given(subcommand).get("model") or {})
        class_path = hparams.pop("_class_path", config.model.class_path)
        task = checkpoints.import_class(class_path)
        hparams.update({key: given[key] for key in getattr(task, "EVALUATION_ARGS", ()) if key in given})
        try:
            self.config = self.parser.parse_object(
                {subcommand: {"model": {"class_path": class_path, "dict_kwargs": hparams}}}, self.config
            )
        except UserError as err:
            raise UserError(f"--ckpt_path: {path}: its hyper-parameters do not fit this vlc: {err}") from None
        now = _flat(self.config[subcommand].model)
        replaced = [
            f"{key}={given[key]!r} -> {now[key]!r}"
            for key in given
            if key != "class_path"
            and key.split(".")[-1] not in LINKED
            and key in now
            and checkpoints.list_or(now[key]) != checkpoints.list_or(given[key])
        ]
        if replaced:
            print(f"vlc: note: the checkpoint's values replace model.{'; model.'.join(replaced)}", file=sys.stderr)

    def _given(self, subcommand: str) -> Namespace:
        """The values set in the config files and on the command line, without defaults.

        Not validated: without the trainer defaults, a logger given by its ``init_args`` alone lacks arguments.
        """
        try:
            return self._parser(subcommand).parse_args(self.argv[1:], defaults=False, _skip_validation=True)
        except (UserError, SystemExit):
            return Namespace()

    @staticmethod
    def _checkpoint_folder(config: Namespace) -> Path:
        """Where this config's runs keep their checkpoints: ``checkpoints/<experiment>`` or a fixed ``dirpath``."""
        for callback in config.trainer.get("callbacks") or []:
            args = callback.get("init_args") if isinstance(callback, Namespace) else None
            if args is not None and "Checkpoint" in callback.class_path and args.get("dirpath"):
                return Path(args.dirpath)
        logger = config.trainer.get("logger")
        if isinstance(logger, Namespace):
            name = (logger.get("init_args") or {}).get("name", "lightning_logs")  # Lightning's default name
        else:
            name = "lightning_logs" if logger is True else None  # false: no logger, no run names
        return checkpoints.experiment_folder(name)

    # -- checks and run folders, before anything is built -------------------------------------------------------
    def before_instantiate_classes(self) -> None:
        subcommand = self.subcommand
        config = self.config[subcommand]
        check_trainer_numbers(config.trainer.as_dict())
        if subcommand == "predict":
            for key in ("output", "submission"):
                if config.writer.get(key):
                    check_writable(Path(config.writer[key]).parent, f"writer.{key}")
            return
        logger = config.trainer.get("logger")
        args = logger.get("init_args") if isinstance(logger, Namespace) else None
        if args is not None and args.get("save_dir"):
            check_writable(args.save_dir, "trainer.logger.init_args.save_dir")
        if subcommand == "fit":
            check_writable(self._checkpoint_folder(config), "the checkpoint folder")
            self._add_default_callbacks(config)
        run = checkpoints.run_of(self.checkpoint) if self.checkpoint else None
        if run is None or args is None:
            return
        args.name, args.version = run["name"], run["version"]
        if subcommand == "fit" and "purge_step" in args:  # the resumed session replaces what followed the checkpoint
            args.purge_step = self.checkpoint.get("global_step", 0)
        elif subcommand in ("validate", "test") and "sub_dir" in args:
            args.sub_dir = subcommand

    @staticmethod
    def _add_default_callbacks(config: Namespace) -> None:
        """A ``Checkpoint`` ranking by the task's ``MONITOR`` and, with a logger, a ``LearningRateMonitor``."""
        callbacks = list(config.trainer.get("callbacks") or [])
        given = {c.class_path.rsplit(".", 1)[-1] for c in callbacks if isinstance(c, Namespace)}
        task = checkpoints.import_class(config.model.class_path)
        if not given & {"Checkpoint", "ModelCheckpoint"} and hasattr(task, "MONITOR"):
            monitor, mode, filename = task.MONITOR
            args = Namespace(monitor=monitor, mode=mode, filename=filename, save_top_k=1, dirpath=None)
            callbacks.append(Namespace(class_path="vlc.callbacks.Checkpoint", init_args=args))
        if "LearningRateMonitor" not in given and config.trainer.get("logger") not in (None, False):
            args = Namespace(logging_interval="step", log_momentum=False, log_weight_decay=False)
            callbacks.append(Namespace(class_path="lightning.pytorch.callbacks.LearningRateMonitor", init_args=args))
        config.trainer.callbacks = callbacks

    def after_instantiate_classes(self) -> None:
        if self.checkpoint is not None:
            checkpoints.check_fits(self.model, self.checkpoint, self.config[self.subcommand].ckpt_path)
        if self.subcommand != "fit":
            return
        if callable(getattr(self.model, "optimizer", None)):  # torch checks its values: a bad one stops here
            check_optimizer(self.model.optimizer, [p for p in self.model.parameters() if p.requires_grad])
        if self.checkpoint is None and isinstance(self.model, Task):
            self.model.load_pretrained()  # before any data is loaded: a missing file or download stops at once

    # -- running: signals and exit codes --------------------------------------------------------------------
    def _run_subcommand(self, subcommand: str) -> None:
        with warnings.catch_warnings(), self.interruption as stop:
            warnings.filterwarnings("ignore", r"Checkpoint directory .* exists and is not empty")
            warnings.filterwarnings("ignore", r".*does not have many workers")  # workers compete with training
            warnings.filterwarnings("ignore", r"Found \d+ module\(s\) in eval mode")  # frozen batch norms: intended
            if subcommand != "fit":  # evaluating or predicting needs none of the callbacks that trained the model
                warnings.filterwarnings("ignore", r"Be aware that when using `ckpt_path`, callbacks used to create")
                # the checkpoint's state_dict already holds the averaged weights, which is what is evaluated
                warnings.filterwarnings("ignore", r"You're using the WeightAveraging callback, but loading")
            stop.watch(self.trainer, training=subcommand == "fit")
            try:
                super()._run_subcommand(subcommand)
            except (SystemExit, KeyboardInterrupt):
                if stop.signal is None:
                    raise
                self._report_interruption(stop.signal)
                raise SystemExit(EXIT_CODES[stop.signal]) from None

    def _report_interruption(self, signal_name: str) -> None:
        if not self.trainer.is_global_zero:
            return
        stopped = self.interruption.stopped or progress(self.trainer)  # ddp_spawn: what the workers reached
        where = f"at epoch {stopped.epoch}, step {stopped.step}"
        saved = stopped.last
        if self.subcommand != "fit" or not saved:
            print(f"vlc: interrupted by {signal_name} {where}; nothing was saved", file=sys.stderr)
            return
        if stopped.last_step == stopped.step:
            print(f"vlc: interrupted by {signal_name} {where}; the progress is saved in {saved}", file=sys.stderr)
        else:  # an immediate stop: what the run saved before
            print(f"vlc: interrupted by {signal_name} {where}; the newest checkpoint is {saved}", file=sys.stderr)
        print(f"resume with: {self._command('fit', saved)}", file=sys.stderr)

    def _command(self, subcommand: str, ckpt: str) -> str:
        """This run's command line for ``subcommand``, with ``--ckpt_path ckpt``."""
        args, skip = [], False
        for arg in self.argv[1:]:
            if skip:
                skip = False
            elif arg.startswith("--ckpt_path"):
                skip = "=" not in arg
            else:
                args.append(arg)
        return shlex.join([program(), subcommand, *args, "--ckpt_path", ckpt])

    def after_fit(self) -> None:
        """Print where the checkpoints and logs are, and the commands to test, predict and see the dashboard."""
        trainer, checkpoint = self.trainer, self.trainer.checkpoint_callback
        if not trainer.is_global_zero or checkpoint is None:
            return
        print()
        if checkpoint.best_model_path:
            score = checkpoint.best_model_score  # None after ddp_spawn: the score stayed in the workers
            score = f" ({checkpoint.monitor} {score:.4f})" if score is not None else ""
            print(f"best checkpoint: {_relative(checkpoint.best_model_path)}{score}")
        if checkpoint.last_model_path:
            print(f"last checkpoint: {_relative(checkpoint.last_model_path)}")
        logger = trainer.logger  # under ddp_spawn this process's logger is not the workers' one: no folder known
        spawned = isinstance(trainer.strategy.launcher, _MultiProcessingLauncher)
        folder = getattr(logger, "log_dir", None) if not spawned else None
        if folder:
            print(f"logs: {_relative(folder)}")
        if not checkpoint.best_model_path:
            return
        best = _relative(checkpoint.best_model_path)
        task = "caption" if "vocab" in self.model.hparams else "classify"
        predict = [program(), "predict", "--config", _relative(CONFIGS / "predict" / f"{task}.yaml")]
        size = getattr(self.datamodule, "image_size", None)
        print("next:")
        print(f"  {self._command('test', best)}")
        predict += ["--ckpt_path", best, "--data.predict_dir", "YOUR_IMAGES/"] + (
            ["--data.image_size", str(size)] if size else []
        )
        print(f"  {shlex.join(predict)}")
        if isinstance(logger, TensorBoardLogger) and not spawned:
            print(f"  {shlex.join([program('tensorboard'), '--logdir', _relative(logger.root_dir)])}")


def program(name: str = "vlc") -> str:
    """How the user runs ``name`` from here: ``vlc`` on the PATH, or the path of the one next to this ``vlc``."""
    invoked = Path(sys.argv[0])
    if (
        invoked.name == "vlc"
        and invoked.parent != Path()
        and str(invoked.parent) not in os.environ["PATH"].split(os.pathsep)
    ):
        return _relative(invoked.parent / name)
    return name


def _relative(path: str | Path) -> str:
    """``path`` relative to the current folder when it lies below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _cli(argv: list[str], args: ArgsType) -> VlcCLI:
    interruption = Interruption()
    always = [
        interruption,
        StepSeed(),
        StopOnDivergence(),
        TimeBudget(),
        BadImageCheck(),
        CaptionSamples(),
        VocabularyFile(),
        CaptionBaselines(),
    ]  # fresh ones for every run
    return VlcCLI(
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        trainer_defaults={**TRAINER_DEFAULTS, "callbacks": always},
        save_config_callback=RunRecord,
        save_config_kwargs={"overwrite": True, "command": argv, "linked": LINKED},
        parser_class=VlcArgumentParser,
        auto_configure_optimizers=False,
        args=args,
        argv=argv,
        interruption=interruption,
    )


def version() -> str:
    """``vlc X (torch Y, lightning Z)``."""
    parts = [f"{name} {metadata.version(name)}" for name in ("torch", "lightning")]
    return f"vlc {metadata.version('vlc')} ({', '.join(parts)})"


def usage() -> str:
    """The top-level help: every subcommand, one line each."""
    lines = ["usage: vlc COMMAND [options]   (vlc COMMAND --help lists a command's options)", "", "commands:"]
    lines += [f"  {name:9s} {text}" for name, text in COMMANDS.items()]
    lines += [
        "",
        "options:",
        "  -h, --help  this message",
        "  --version   vlc's version and those of torch and lightning",
    ]
    return "\n".join(lines)


def main(args: ArgsType = None) -> None:
    """Entry point of the ``vlc`` console script; ``args`` replaces ``sys.argv[1:]`` (tests call it in-process)."""
    argv = list(sys.argv[1:] if args is None else args)
    if argv[:1] in ([], ["-h"], ["--help"]):
        print(usage())
        return
    if argv[:1] == ["--version"]:
        print(version())
        return
    try:
        if argv[:1] == ["data"]:
            from vlc.data_tools import main as data_main

            data_main(argv[1:])
        elif argv[:1] == ["compare"]:
            from vlc.compare import main as compare_main

            compare_main(argv[1:])
        else:
            check_config_files(argv)
            _cli(argv, None if args is None else argv)
    except KeyboardInterrupt:
        print("vlc: interrupted (SIGINT)", file=sys.stderr)
        raise SystemExit(EXIT_CODES["SIGINT"]) from None
    except MisconfigurationException as err:  # Lightning's word for a trainer setting that cannot work
        print(f"vlc: error: {' '.join(str(err).split())}", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception as err:
        user_error = find_user_error(err)
        if user_error is None:
            raise
        print(f"vlc: error: {user_error}", file=sys.stderr)
        raise SystemExit(user_error.exit_code) from None
