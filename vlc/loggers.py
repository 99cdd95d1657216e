"""What vlc shows besides numbers (figures, images, text), sent to each logger of a run in the form it takes.

TensorBoard (``add_figure``, ``add_image``, ``add_text``), MLflow (``log_figure``, ``log_image``, ``log_text``:
artifacts of the run, ``<tag>/<step>.png`` or ``.md``) and WandB (``log_image``, ``log_text``: a one-cell table) take
them; other loggers (CSV) get none, and the first one that could not take something is named in one warning per
run. Numbers (metrics, hyper-parameters) go through Lightning's ``log_metrics`` and ``log_hyperparams``, which every
logger takes.
"""

import weakref

import lightning as L
import matplotlib

matplotlib.use("Agg")  # no display on servers and in tests
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from lightning.pytorch.loggers import Logger, MLFlowLogger, TensorBoardLogger, WandbLogger  # noqa: E402

from vlc.errors import warn  # noqa: E402

TAKERS = "TensorBoardLogger, MLFlowLogger or WandbLogger"
"""The loggers that take figures, images and text (in the warning)."""
_warned: "weakref.WeakSet[Logger]" = weakref.WeakSet()
"""The loggers already named in a warning (a run's loggers are made afresh for every command)."""


def log_figure(trainer: L.Trainer, tag: str, fig, step: int) -> None:
    """Send a matplotlib figure to every logger of ``trainer`` that takes images, then free it (first process only).

    Args:
        trainer: the run's trainer (its loggers).
        tag: the figure's name (``val/confusion_matrix``).
        fig: the figure.
        step: the step shown with it (the epoch for vlc's figures).
    """
    try:
        _send(trainer, "figures", tag, fig, step)
    finally:
        plt.close(fig)


def log_image(trainer: L.Trainer, tag: str, image: np.ndarray, step: int) -> None:
    """Send an ``(H, W, 3)`` uint8 image to every logger of ``trainer`` that takes images (first process only)."""
    _send(trainer, "images", tag, image, step)


def log_text(trainer: L.Trainer, tag: str, text: str, step: int) -> None:
    """Send Markdown ``text`` to every logger of ``trainer`` that takes text (first process only)."""
    _send(trainer, "text", tag, text, step)


def takes_media(trainer: L.Trainer) -> bool:
    """Whether a logger of ``trainer`` takes figures, images and text (else they need not be drawn)."""
    return any(isinstance(logger, (TensorBoardLogger, MLFlowLogger, WandbLogger)) for logger in trainer.loggers)


def _send(trainer: L.Trainer, what: str, tag: str, value, step: int) -> None:
    if not trainer.is_global_zero:
        return
    took = {logger: _sent(logger, what, tag, value, step) for logger in trainer.loggers}
    left_out = [logger for logger, sent in took.items() if not sent]
    if any(logger not in _warned for logger in left_out):
        names = " and ".join(dict.fromkeys(type(logger).__name__ for logger in left_out))
        takers = " and ".join(dict.fromkeys(type(logger).__name__ for logger, sent in took.items() if sent))
        where = f"they go to {takers} only" if takers else f"add a {TAKERS} to see them"
        warn(f"{names} takes no figures, images or text: {tag} and the others are not logged to it ({where})")
        _warned.update(left_out)


def _sent(logger: Logger, what: str, tag: str, value, step: int) -> bool:
    """Whether ``logger`` took ``value`` (a figure, an image or text)."""
    if isinstance(logger, TensorBoardLogger):
        writer = logger.experiment
        if what == "figures":
            writer.add_figure(tag, value, global_step=step, close=False)
        elif what == "images":
            writer.add_image(tag, value, step, dataformats="HWC")
        else:
            writer.add_text(tag, value, step)
    elif isinstance(logger, MLFlowLogger):
        client, run_id, name = logger.experiment, logger.run_id, f"{tag}/{step:04d}"
        if what == "figures":
            client.log_figure(run_id, value, f"{name}.png")
        elif what == "images":
            client.log_image(run_id, value, f"{name}.png")
        else:
            client.log_text(run_id, value, f"{name}.md")
    elif isinstance(logger, WandbLogger):
        if what == "text":
            logger.log_text(key=tag, columns=["text"], data=[[value]])
        else:
            import wandb

            logger.log_image(key=tag, images=[wandb.Image(value)])
    else:
        return False
    return True


def finish(trainer: L.Trainer) -> None:
    """End the WandB run a command logged to (its summary written), so that the next command starts its own.

    ``wandb.finish`` only tells WandB's service process that the run is over: the service writes the end of the run's
    ``.wandb`` file (its summary among it) when it closes the run, a moment later. ``wandb.teardown`` waits for the
    service to stop, so that everything is on disk when the command returns (as at the exit of a ``vlc`` process),
    also when commands run one after another in one Python process; the next run starts a new service.
    """
    if trainer.is_global_zero and any(isinstance(logger, WandbLogger) for logger in trainer.loggers):
        import wandb

        if wandb.run is not None:
            wandb.finish()
            wandb.teardown()
