"""A run that has blown up stops as diverged (exit 3) and keeps no checkpoint of the broken weights, through the CLI."""

from pathlib import Path

import pytest
import torch
from helpers import run_fails, tiny_classifier_fit, write_tinyimagenet30

EXPERIMENT = Path("checkpoints") / "tinyimagenet30-cnn" / "version_0"


def fit_args(root, *extra: str) -> list[str]:
    return tiny_classifier_fit(root, "--data.batch_size=3", "--trainer.precision=32-true", *extra)  # 3 steps an epoch


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_tinyimagenet30(tmp_path / "data", per_class=4)
    return tmp_path / "data"


def status() -> str:
    return Path("logs/tinyimagenet30-cnn/version_0/run.yaml").read_text()


def test_a_learning_rate_far_too_large_stops_as_diverged_with_no_checkpoint(data, capsys):
    # max_lr 10: the weights grow to ~1e5 and the validation loss to ~1e10 while both stay finite; before, the run
    # ended "complete" with exit 0 and kept those weights as best and last
    err = run_fails(
        capsys, fit_args(data, "--trainer.max_epochs=2", "--model.init_args.scheduler.init_args.max_lr=10"), 3
    )
    assert "vlc: error: training diverged at epoch 0" in err and "learning rate" in err
    assert "times the first steps' training loss" in err
    assert not list(Path("checkpoints").rglob("*.ckpt"))
    assert "status: diverged" in status()


def test_a_nan_validation_loss_stops_as_diverged_and_keeps_the_good_epoch(data, capsys):
    fault = [
        "--trainer.callbacks+=faults.Fault",
        "--trainer.callbacks.step=4",
        "--trainer.callbacks.fault=nan_val_loss",
    ]
    err = run_fails(capsys, fit_args(data, "--trainer.max_epochs=3", *fault), 3)
    assert "vlc: error: training diverged at epoch 1, step 6: the validation loss is nan" in err
    checkpoints = sorted(EXPERIMENT.glob("*.ckpt"))
    assert [c.name for c in checkpoints][-1] == "last.ckpt" and checkpoints[0].name.startswith("best-epoch00")
    for file in checkpoints:  # epoch 0's: nothing of the broken epoch 1 was written
        saved = torch.load(file, weights_only=True)
        assert saved["epoch"] == 0 and saved["global_step"] == 3
        assert torch.isfinite(torch.tensor(saved["vlc_val_scores"]["val/loss"]))
    assert "status: diverged" in status()
