"""Checks of a run's settings made before any work: config files readable, numbers in range, output folders writable."""

import os
import re
from collections.abc import Callable
from pathlib import Path

import torch
import yaml

from vlc.errors import UserError
from vlc.text_files import read_text

TRAINER_MINIMUMS = {
    "max_epochs": (-1, "-1 (no limit) or more"),
    "max_steps": (-1, "-1 (no limit) or more"),
    "min_epochs": (0, "0 or more"),
    "min_steps": (0, "0 or more"),
    "log_every_n_steps": (1, "1 or more"),
    "accumulate_grad_batches": (1, "1 or more"),
    "check_val_every_n_epoch": (1, "1 or more"),
    "num_sanity_val_steps": (-1, "-1 (all) or more"),
    "limit_train_batches": (0, "0 or more"),
    "limit_val_batches": (0, "0 or more"),
    "limit_test_batches": (0, "0 or more"),
    "limit_predict_batches": (0, "0 or more"),
    "gradient_clip_val": (0, "0 or more"),
}


def check_trainer_numbers(trainer: dict) -> None:
    """Stop on a trainer setting below its smallest meaningful value (Lightning would fail later, or loop forever).

    Raises:
        UserError: naming the key, the value and what is expected.
    """
    for key, (minimum, expected) in TRAINER_MINIMUMS.items():
        value = trainer.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < minimum:
            raise UserError(f"trainer.{key}: expected {expected}, got {value}")


OPTIMIZER_WORDS = {"learning rate": "lr", "epsilon": "eps", "beta": "betas", "eta": "etas"}
"""How torch's optimizers name some of their arguments in their errors (``Invalid learning rate: -1.0``)."""


def check_optimizer(optimizer: Callable, params: list[torch.nn.Parameter], key: str = "model.optimizer") -> None:
    """Build ``optimizer`` over ``params`` once, so that torch's checks of its arguments stop a run before any work.

    Raises:
        UserError: naming the argument torch refused (``model.optimizer.lr: ...``) and torch's reason.
    """
    try:
        optimizer(params or [torch.nn.Parameter(torch.zeros(1))])
    except ValueError as err:
        reason = " ".join(str(err).split())
        names = {**OPTIMIZER_WORDS, **{name: name for name in getattr(optimizer, "keywords", {})}}
        found = [(m.start(), name) for word, name in names.items() if (m := re.search(rf"\b{word}\b", reason, re.I))]
        cls = next((arg for arg in getattr(optimizer, "args", ()) if isinstance(arg, type)), None)
        where = f"{key}.{min(found)[1]}" if found else key
        raise UserError(f"{where}: {cls.__name__ if cls else 'the optimizer'} refuses it ({reason})") from None


def check_writable(folder: str | Path, key: str) -> None:
    """Check, before the run does any work, that ``folder`` can be created (if missing) and written to.

    Nothing is created: the check looks at the folder or its nearest existing parent.

    Raises:
        UserError: naming ``key``, the folder and the reason.
    """
    folder = Path(folder).absolute()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise UserError(f"{key}: cannot write to {folder}/ ({existing} is a file, not a folder)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{key}: cannot write to {folder}/ ({existing} is not writable)")


def check_config_files(argv: list[str]) -> None:
    """Check every config file of a command line (jsonargparse's errors name neither file nor line).

    Raises:
        UserError: a file is missing, not UTF-8, not valid YAML (naming the line and column), empty, or not a
            mapping of keys.
    """
    for path in config_files(argv):
        if not path.is_file():
            raise UserError(f"--config {path}: no such file")
        try:
            config = yaml.safe_load(read_text(path))
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise UserError(f"{path}{where}: not valid YAML ({problem})") from None
        if config is None:
            raise UserError(f"{path}: the config is empty; expected keys such as model:, data: and trainer:")
        if not isinstance(config, dict):
            raise UserError(
                f"{path}: expected a config of keys (model:, data:, trainer:, ...), got a {type(config).__name__}"
            )


def config_files(argv: list[str]) -> list[Path]:
    """The files given as ``--config FILE``, ``--config=FILE`` or ``-c FILE``.

    A value that is no file but reads as YAML itself (``--config '{trainer: {max_epochs: 2}}'``) is left to
    jsonargparse, which accepts it.
    """
    values = []
    for i, arg in enumerate(argv):
        if arg in ("--config", "-c") and i + 1 < len(argv):
            values.append(argv[i + 1])
        elif arg.startswith("--config="):
            values.append(arg.split("=", 1)[1])
    return [Path(v) for v in values if Path(v).is_file() or not (":" in v or v.lstrip().startswith("{"))]
