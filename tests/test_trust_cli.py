"""The command line can be trusted: runs never overwrite each other, every Lightning logger completes a fit, a bad
optimizer value or a misspelled option stops in one line before any run folder exists."""

import csv
import os

import pytest
import torch
from helpers import (
    events,
    run_cli,
    run_fails,
    tiny_classifier_fit,
    write_tinyimagenet30,
)

from vlc.cli import main


def fit_args(root, *extra: str) -> list[str]:
    return tiny_classifier_fit(root, *extra)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli") / "data"
    write_tinyimagenet30(root, per_class=4)
    return root


def epochs_in(ckpt) -> int:
    return torch.load(ckpt, weights_only=False)["epoch"] + 1


def test_runs_without_a_logger_never_overwrite_each_other(data, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    main(fit_args(data, "--trainer.logger=false"))
    first = tmp_path / "checkpoints" / "version_0" / "last.ckpt"
    saved = first.read_bytes()
    main(fit_args(data, "--trainer.logger=false", "--seed_everything=1"))
    second = tmp_path / "checkpoints" / "version_1" / "last.ckpt"
    assert first.read_bytes() == saved and second.is_file()  # before, both wrote checkpoints/last.ckpt

    code, _ = run_cli(capsys, fit_args(data, "--trainer.logger=false", "--trainer.max_epochs=2", "--ckpt_path=last"))
    assert code == 0  # resumes the newest run in its own folder
    assert epochs_in(second) == 2 and epochs_in(first) == 1
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["version_0", "version_1"]
    assert not list(tmp_path.glob("checkpoints/*.ckpt"))


def test_csv_and_several_loggers_complete_a_fit(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main(fit_args(data, "--trainer.logger=lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir=logs"))
    with open(tmp_path / "logs" / "tinyimagenet30-cnn" / "version_0" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert any(row.get("hp/best_val_acc") for row in rows)  # the final scores, as metrics: the fit reached its end
    (tmp_path / "loggers.yaml").write_text(
        "trainer:\n  logger:\n"
        "    - class_path: lightning.pytorch.loggers.TensorBoardLogger\n"
        "      init_args: {save_dir: logs, name: both}\n"
        "    - class_path: lightning.pytorch.loggers.CSVLogger\n"
        "      init_args: {save_dir: logs, name: both_csv}\n"
    )
    main(fit_args(data, "--config", str(tmp_path / "loggers.yaml")))
    assert (tmp_path / "logs" / "both_csv" / "version_0" / "metrics.csv").is_file()
    assert (tmp_path / "checkpoints" / "both" / "version_0" / "last.ckpt").is_file()  # named by the first logger
    hparams = events(tmp_path / "logs" / "both" / "version_0").summary_metadata
    assert hparams and not [tag for tag in hparams if "_class_path" in tag or "_instantiator" in tag]
    assert "_class_path" not in (tmp_path / "logs" / "both_csv" / "version_0" / "hparams.yaml").read_text()


def test_a_negative_learning_rate_stops_in_one_line_before_any_folder(data, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    err = run_fails(capsys, fit_args(data, "--model.init_args.optimizer.init_args.lr=-0.1"))
    assert err.strip().splitlines()[-1].startswith("vlc: error: model.optimizer.lr: SGD refuses it (")
    assert "Traceback" not in err
    assert not os.listdir(tmp_path)  # no logs/, no checkpoints/


def test_a_misspelled_option_is_not_taken_for_a_longer_one(data, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    err = run_fails(capsys, fit_args(data, "--trainer.max_epoch=3"))
    assert "trainer.max_epoch" in err and err.count("\n") == 1
    assert not os.listdir(tmp_path)
