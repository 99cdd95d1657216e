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
from helpers import CONFIGS, TINY_NET, run_cli, write_tinyimagenet30

pytestmark = pytest.mark.slow
TESTS = Path(__file__).resolve().parent
LAST = Path("checkpoints") / "tinyimagenet30-cnn" / "version_0" / "last.ckpt"
RUN = Path("logs") / "tinyimagenet30-cnn" / "version_0"


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
    assert "status: interrupted" in (tmp_path / RUN / "run.yaml").read_text()


@pytest.mark.parametrize("max_epochs", [1, 2])
def test_resume_past_max_epochs_says_so_in_one_line_and_changes_nothing(tmp_path, monkeypatch, capsys, max_epochs):
    monkeypatch.chdir(tmp_path)
    write_tinyimagenet30(tmp_path / "data", per_class=4)
    args = fit_args(tmp_path / "data", "--trainer.enable_progress_bar=false")
    assert run_cli(capsys, [*args, "--trainer.max_epochs=2"])[0] == 0
    files = [LAST, RUN / "run.yaml", *sorted(RUN.glob("events.out.tfevents.*"))]
    before = [f.read_bytes() for f in files]
    code, err = run_cli(capsys, [*args, f"--trainer.max_epochs={max_epochs}", "--ckpt_path=last"])
    assert code == 0
    steps = torch.load(LAST, weights_only=True)["global_step"]
    assert err.strip().splitlines()[-1] == (
        f"vlc: nothing to train: {LAST} has trained 2 epochs ({steps} steps), as far as "
        f"trainer.max_epochs={max_epochs} goes; raise it to train on"
    )
    assert "planned for" not in err  # no schedule resized for steps that never run
    assert [f.read_bytes() for f in files] == before  # no new session, checkpoint or log event
    assert [p.name for p in RUN.parent.iterdir()] == ["version_0"]  # no new run folder either
