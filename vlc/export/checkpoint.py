"""The task a checkpoint holds, rebuilt for export: its kind checked, its weights loaded, in evaluation mode."""

from pathlib import Path

from vlc import checkpoints
from vlc.checkpoint_upgrade import TASK_KEY
from vlc.errors import UserError
from vlc.onnx_format import KINDS
from vlc.tasks.base import Task


def checkpoint_kind(checkpoint: dict, path: str | Path) -> str:
    """``classification`` or ``captioning``: the kind the checkpoint records (``vlc_task``).

    Raises:
        UserError: the checkpoint records no kind, or one that ``vlc export`` does not know.
    """
    record = checkpoint.get(TASK_KEY)
    kind = record.get("kind") if isinstance(record, dict) else None
    if kind not in KINDS:
        found = f"a model of kind {kind!r}" if kind else "no vlc model kind (vlc_task)"
        raise UserError(f"--ckpt_path: {path} holds {found}; vlc export takes {' and '.join(KINDS)} checkpoints")
    return kind


def load_task(path: str | Path, evaluation: dict | None = None) -> Task:
    """The model of checkpoint ``path`` with its weights, in evaluation mode and float32.

    Args:
        path: a checkpoint file written by ``vlc fit`` (any vlc version: older ones are upgraded on reading).
        evaluation: values that replace the checkpoint's evaluation arguments (the task's ``EVALUATION_ARGS``, e.g.
            ``flip_average``), as the same options given to ``vlc predict`` do.

    Raises:
        UserError: the file is not a checkpoint, holds an unknown kind, or does not fit this vlc.
    """
    from lightning.pytorch.cli import instantiate_module

    checkpoint = checkpoints.read(path)
    checkpoint_kind(checkpoint, path)
    cls = checkpoints.task_class(checkpoint)
    if cls is None:
        raise UserError(f"--ckpt_path: {path} names a model class this vlc does not have ({checkpoint[TASK_KEY]})")
    hparams = {k: v for k, v in checkpoint["hyper_parameters"].items() if k not in ("_class_path", "_instantiator")}
    hparams.update(evaluation or {})
    try:
        task = instantiate_module(cls, hparams)
    except UserError:
        raise
    except Exception as err:  # jsonargparse's report of an argument this vlc does not take
        first = " ".join(str(err).split())[:300]
        raise UserError(f"--ckpt_path: {path}: its hyper-parameters do not fit this vlc: {first}") from None
    task.on_load_checkpoint(checkpoint)
    checkpoints.check_fits(task, checkpoint, str(path))
    task.load_state_dict(checkpoint["state_dict"], strict=False)  # check_fits named any missing weight
    return task.float().eval()
