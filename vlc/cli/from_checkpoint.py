"""``--ckpt_path`` before anything is built: resolved to a file, read once, checked, its hyper-parameters applied.

``last``/``best``/``auto`` and folders are resolved to a file of the config's run folder (``vlc.checkpoints``), which
is read once with one-line errors and checked for its task. Its hyper-parameters then replace the model's arguments
(as Lightning's own ``--ckpt_path`` handling does), except the task's ``EVALUATION_ARGS`` given in the config or on
the command line (how captions are decoded and scored, test-time augmentation); the values given that they replace
are listed.
"""

import sys

from jsonargparse import Namespace
from lightning.pytorch.cli import LightningArgumentParser

from vlc import checkpoints, runs
from vlc.errors import UserError


def flat(value, prefix: str = "") -> dict:
    """A nested config as ``{dotted.key: value}`` (``init_args`` levels left out)."""
    if isinstance(value, Namespace):
        value = value.as_dict()
    if not isinstance(value, dict):
        return {prefix: value}
    out = {}
    for key, item in value.items():
        name = prefix if key == "init_args" else f"{prefix}.{key}" if prefix else key
        out.update(flat(item, name))
    return out


def load(config: Namespace, command: str) -> dict | None:
    """Resolve ``config.ckpt_path`` in place, read the file and check its task; None without a checkpoint.

    Raises:
        UserError: ``vlc predict`` without a checkpoint, or one that cannot be read or is of another task.
        SystemExit: (code 0) a ``fit`` whose checkpoint has already trained as far as the trainer's limits go.
    """
    path = checkpoints.resolve(config.get("ckpt_path"), runs.checkpoint_folder(config), command)
    config.ckpt_path = path
    if path in (None, "hpc"):
        if command == "predict":
            raise UserError("vlc predict needs a trained model: pass --ckpt_path path/to/checkpoint.ckpt")
        return None
    checkpoint = checkpoints.read(path)
    checkpoints.check_task(checkpoint, path, checkpoints.import_class(config.model.class_path), command)
    if command == "fit":
        stop_if_trained(checkpoint, path, config.trainer)
    return checkpoint


def stop_if_trained(checkpoint: dict, path: str, trainer: Namespace) -> None:
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


def apply_hyperparameters(
    parser: LightningArgumentParser,
    args: list[str],
    class_path: str,
    checkpoint: dict,
    path: str,
    linked: tuple[str, ...],
) -> Namespace:
    """The config of ``args`` with the checkpoint's hyper-parameters as the model's arguments.

    The checkpoint's values become the model's defaults and ``args`` are parsed again over them, so a task's
    ``EVALUATION_ARGS`` keep the values the config files and the command line give (nested ones included, such as
    ``decoding.beam_width``); every other argument is then set back to the checkpoint's, since the weights were
    trained with it, and a given value it replaces is listed. ``class_path`` is the config's model class (the
    checkpoint's or a subclass, ``load`` checked), ``linked`` arguments come from the data module.
    """
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    hparams.pop("_instantiator", None)
    hparams.pop("_class_path", None)
    for key in linked:
        hparams.pop(key, None)
    if not hparams:
        return parser.parse_args(args)
    evaluation = set(getattr(checkpoints.import_class(class_path), "EVALUATION_ARGS", ()))
    try:
        parser.set_defaults({"model": {"class_path": class_path, "init_args": hparams}})
        config = parser.parse_args(args)  # the checkpoint's values, with those given over them
        given = flat(config.model)
        trained = {key: value for key, value in hparams.items() if key not in evaluation}
        config = parser.parse_object({"model": {"class_path": class_path, "init_args": trained}}, config)
    except UserError as err:
        raise UserError(f"--ckpt_path: {path}: its hyper-parameters do not fit this vlc: {err}") from None
    saved = flat(trained)
    replaced = [
        f"{key}={given[key]!r} -> {saved[key]!r}"
        for key in given
        if key in saved and key != "class_path" and checkpoints.list_or(given[key]) != checkpoints.list_or(saved[key])
    ]
    if replaced:
        print(f"vlc: note: the checkpoint's values replace model.{'; model.'.join(replaced)}", file=sys.stderr)
    return config
