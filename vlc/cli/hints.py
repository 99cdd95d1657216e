"""What a run prints for the user when it ends: where its files are and the next commands, ready to run."""

import os
import shlex
import sys
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger

from vlc import runs

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
"""The example configs of a source checkout (what ``pip install -e .`` installs from)."""


EVALUATION_FLAGS = (
    *("--config", "--data.", "--seed_everything", "--trainer.limit_test_batches", "--trainer.logger"),
    *("--trainer.accelerator", "--trainer.devices", "--trainer.precision"),
)
"""The options of a fit that a ``vlc test`` of its checkpoint keeps (the model comes from the checkpoint, and the
training loop's limits such as ``--trainer.max_epochs`` or ``limit_train_batches`` mean nothing to it; nor does
``--trainer.num_nodes``: typed on one machine, it would wait for the other nodes forever)."""


def program(name: str = "vlc") -> str:
    """How the user runs ``name`` from here: ``vlc`` on the PATH, or the path of the one next to this ``vlc``."""
    invoked = Path(sys.argv[0])
    if (
        invoked.name == "vlc"
        and invoked.parent != Path()
        and str(invoked.parent) not in os.environ["PATH"].split(os.pathsep)
    ):
        return relative(invoked.parent / name)
    return name


def relative(path: str | Path) -> str:
    """``path`` relative to the current folder when it lies below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _options(argv: list[str], keep: tuple[str, ...] | None = None) -> list[str]:
    """``argv``'s options without ``--ckpt_path`` (and, with ``keep``, only those starting with one of ``keep``)."""
    out, skip = [], False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        takes_value = "=" not in arg and i + 1 < len(argv) and not argv[i + 1].startswith("--")
        if name == "--ckpt_path" or (keep is not None and arg.startswith("--") and not name.startswith(keep)):
            skip = takes_value
            continue
        out.append(arg)
        if takes_value:
            out.append(argv[i + 1])
            skip = True
    return out


def resume_command(argv: list[str], ckpt: str) -> str:
    """The command that resumes the fit run as ``argv`` (the options after ``vlc fit``) from ``ckpt``."""
    return shlex.join([program(), "fit", *_options(argv), "--ckpt_path", ckpt])


def test_command(argv: list[str], ckpt: str, datamodule: L.LightningDataModule | None) -> str:
    """``vlc test`` of ``ckpt`` on the data of the fit run as ``argv``, with what the test split needs."""
    options = _options(argv, EVALUATION_FLAGS)
    from vlc.data.modules.base import ImageDataModule

    needs = datamodule.test_options() if isinstance(datamodule, ImageDataModule) else []
    return shlex.join([program(), "test", *options, *needs, "--ckpt_path", ckpt])


def scores(results: list[dict]) -> None:
    """Print an evaluation's scores, one per line, to 4 significant digits (``test/acc  0.944``)."""
    values = {key: value for result in results for key, value in result.items()}
    if not values:
        return
    width = max(map(len, values))
    print()
    for key, value in sorted(values.items()):
        value = float(value)
        print(f"{key:{width}s}  {value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{key:{width}s}  {value:.3e}")


def after_fit(trainer: L.Trainer, model: L.LightningModule, datamodule, argv: list[str], spawned: bool) -> None:
    """Print where the checkpoints and logs are, and the commands to test, predict and see the dashboard."""
    checkpoint = trainer.checkpoint_callback
    if not trainer.is_global_zero or checkpoint is None:
        return
    print()
    if checkpoint.best_model_path:
        score = checkpoint.best_model_score  # None after ddp_spawn: the score stayed in the workers
        score = f" ({checkpoint.monitor} {score:.4f})" if score is not None else ""
        print(f"best checkpoint: {relative(checkpoint.best_model_path)}{score}")
    if checkpoint.last_model_path:
        print(f"last checkpoint: {relative(checkpoint.last_model_path)}")
    logger = trainer.logger  # under ddp_spawn this process's logger is not the workers' one: no folder known
    folder = getattr(logger, "log_dir", None) if not spawned else None
    if logger is not None and not spawned and not folder:  # MLflow, WandB: vlc's files of the run (runs.log_dir)
        run = runs.run_name(trainer)
        folder = runs.LOGS / run["name"] / run["version"]
    if folder:
        print(f"logs: {relative(folder)}")
    if not checkpoint.best_model_path:
        return
    best = relative(checkpoint.best_model_path)
    predict_config = relative(CONFIGS.parent / model.PREDICT_CONFIG)
    size = getattr(datamodule, "image_size", None)
    predict = [program(), "predict", "--config", predict_config, "--ckpt_path", best, "--data.predict_dir"]
    predict += ["YOUR_IMAGES/"] + (["--data.image_size", str(size)] if size else [])
    print("next:")
    print(f"  {test_command(argv, best, datamodule)}")
    print(f"  {shlex.join(predict)}")
    if isinstance(logger, TensorBoardLogger) and not spawned:
        print(f"  {shlex.join([program('tensorboard'), '--logdir', relative(logger.root_dir)])}")


def interrupted(signal_name: str, stopped, command: str, argv: list[str]) -> None:
    """Say where an interrupted run stopped, what it saved and how to resume it (``stopped``: its ``Progress``)."""
    where = f"at epoch {stopped.epoch}, step {stopped.step}"
    saved = stopped.last
    if command != "fit" or not saved:
        print(f"vlc: interrupted by {signal_name} {where}; nothing was saved", file=sys.stderr)
        return
    if stopped.last_step == stopped.step:
        print(f"vlc: interrupted by {signal_name} {where}; the progress is saved in {saved}", file=sys.stderr)
    else:  # an immediate stop: what the run saved before
        print(f"vlc: interrupted by {signal_name} {where}; the newest checkpoint is {saved}", file=sys.stderr)
    launched = launcher()
    on_nodes = f" (through the same {launched} command, on every node)" if launched else ""
    print(f"resume with{on_nodes}: {resume_command(argv, saved)}", file=sys.stderr)


def launcher() -> str | None:
    """``torchrun`` or ``srun`` when this process is one of several that such a launcher started, else None."""
    if "TORCHELASTIC_RUN_ID" in os.environ:
        return "torchrun"
    if os.environ.get("SLURM_NTASKS", "1").isdigit() and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        return "srun"
    return None
