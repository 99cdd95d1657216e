"""What vlc prints after an interruption under DDP and after a resume past ``max_epochs``: the truth, read back from
the checkpoints the run wrote."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import CONFIGS, TINY_NET, write_tinyimagenet30

pytestmark = pytest.mark.slow
TESTS = Path(__file__).resolve().parent
LAST = Path("checkpoints") / "tinyimagenet30-cnn" / "version_0" / "last.ckpt"


class GroupSignal(L.Callback):
    """At training step ``step``, rank 0 sends SIGTERM to its process group (as ``kill -- -PGID`` or a scheduler)."""

    def __init__(self, step: int = 4) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if trainer.global_step == self.step and trainer.is_global_zero:
            os.killpg(os.getpgid(0), signal.SIGTERM)


def vlc(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``vlc ARGS`` in a fresh process group in ``cwd`` (this folder importable); a hang fails after 120 s."""
    env = {**os.environ, "PYTHONPATH": str(TESTS), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "vlc", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=True,
    )


def fit_args(root: Path, *extra: str) -> list[str]:
    config = str(CONFIGS / "tinyimagenet30" / "cnn.yaml")
    return ["fit", "--config", config, f"--data.root={root}", "--data.batch_size=4", *TINY_NET, *extra]


def test_ddp_spawn_interruption_names_the_workers_step_and_checkpoint(tmp_path):
    write_tinyimagenet30(tmp_path / "data", per_class=8)
    ddp = ["--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp_spawn"]
    signal_at = ["--trainer.callbacks+=test_trust_messages.GroupSignal", "--trainer.callbacks.step=4"]
    stopped = vlc(tmp_path, *fit_args(tmp_path / "data", "--trainer.max_epochs=3", *ddp, *signal_at))
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    assert "Traceback" not in stopped.stderr
    saved = torch.load(tmp_path / LAST, weights_only=True)
    assert saved["global_step"] == 5  # the batch in flight finished, then the workers saved
    where = f"at epoch {saved['epoch']}, step 5; the progress is saved in {LAST}"
    assert f"vlc: interrupted by SIGTERM {where}" in stopped.stderr
    assert "nothing was saved" not in stopped.stderr
    assert f"--ckpt_path {LAST}" in stopped.stderr
    assert "status: interrupted" in (tmp_path / "logs" / "tinyimagenet30-cnn" / "version_0" / "run.yaml").read_text()
