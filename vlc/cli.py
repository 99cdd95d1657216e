"""The ``vlc`` command: LightningCLI subcommands (fit, validate, test, predict) plus ``vlc data`` tools.

Every experiment is one YAML file naming a model and a data module by ``class_path``. The data module is the
source of truth for the class names, linked into the model and stored in its checkpoints; ``vlc predict``
takes them from the checkpoint, so prediction needs no dataset.
"""

import sys
import warnings
from pathlib import Path

from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger

from vlc.callbacks.prediction_writer import PredictionWriter
from vlc.errors import UserError, find_user_error

LINKED = ("num_classes", "class_names", "vocab")
"""Data module attributes passed to the model's ``__init__`` arguments of the same name."""

TRAINER_DEFAULTS = {
    "logger": {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": "logs", "name": "default", "default_hp_metric": False},
    },
    "log_every_n_steps": 10,
}


NOISE = ("Does not validate against any", "Subtypes:", "Errors:", "- Expected a <class 'NoneType'>", "Given value")


class VlcArgumentParser(LightningArgumentParser):
    """A parser whose errors are one line for the user (jsonargparse prints the usage and a nested report)."""

    def error(self, message: str, ex: Exception | None = None):
        lines = [line.strip() for line in message.splitlines() if line.strip()]
        raise UserError(" ".join(line for line in lines if not line.startswith(NOISE)))


class VlcCLI(LightningCLI):
    """LightningCLI with vlc's links, defaults and messages."""

    def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs) -> LightningArgumentParser:
        self._preparing = subcommand  # add_arguments_to_parser needs to know which subcommand it builds
        return super()._prepare_subcommand_parser(klass, subcommand, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        if self._preparing == "predict":  # the class names come from the checkpoint, not from data
            parser.add_lightning_class_args(PredictionWriter, "writer")
            return
        for key in LINKED:  # a link whose source or target does not exist is skipped
            parser.link_arguments(f"data.{key}", f"model.init_args.{key}", apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand]
        ckpt = config.get("ckpt_path")
        if self.subcommand == "predict" and not ckpt:
            raise UserError("vlc predict needs a trained model: pass --ckpt_path path/to/checkpoint.ckpt")
        if ckpt and ckpt not in ("last", "best", "hpc") and not Path(ckpt).is_file():
            raise UserError(f"--ckpt_path: {ckpt} does not exist")

    def after_fit(self) -> None:
        checkpoint = self.trainer.checkpoint_callback
        if not self.trainer.is_global_zero:
            return
        print()
        if checkpoint is not None and checkpoint.best_model_path:
            score = checkpoint.best_model_score  # None after ddp_spawn: the score stayed in the workers
            score = f" ({checkpoint.monitor} {score:.4f})" if score is not None else ""
            print(f"best checkpoint: {checkpoint.best_model_path}{score}")
            print(f"last checkpoint: {checkpoint.last_model_path}")
        if isinstance(self.trainer.logger, TensorBoardLogger):
            print(f"logs: {self.trainer.logger.log_dir}")
            print(f"dashboard: tensorboard --logdir {self.trainer.logger.save_dir}")


def _cli(args: ArgsType) -> VlcCLI:
    return VlcCLI(
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        trainer_defaults=TRAINER_DEFAULTS,
        save_config_kwargs={"overwrite": True},
        parser_class=VlcArgumentParser,
        auto_configure_optimizers=False,
        args=args,
    )


def main(args: ArgsType = None) -> None:
    """Entry point of the ``vlc`` console script; ``args`` replaces ``sys.argv[1:]`` (tests call it in-process)."""
    argv = list(sys.argv[1:] if args is None else args)
    UserError.last = None
    try:
        if argv[:1] == ["data"]:
            from vlc.data_tools import main as data_main

            data_main(argv[1:])
        elif argv[:1] == ["compare"]:
            from vlc.compare import main as compare_main

            compare_main(argv[1:])
        else:
            warnings.filterwarnings("ignore", ".*does not have many workers.*")
            _cli(None if args is None else argv)
    except Exception as err:
        user_error = find_user_error(err)
        if user_error is None:
            raise
        print(f"vlc: error: {user_error}", file=sys.stderr)
        raise SystemExit(2) from None
