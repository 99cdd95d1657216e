"""The command line as a new user meets it: an experiment's own --help, quiet runs, and closing hints that run."""

import shlex

import pytest
import torch
import yaml
from helpers import CONFIGS, run_cli, run_fails, tiny_classifier_fit, write_tinyimagenet30

from vlc.checkpoints import task_class
from vlc.cli import main
from vlc.tasks import ImageClassifier


def test_help_of_an_experiment_lists_its_model_and_data_options(capsys):
    """`vlc fit --config demo --help` shows the demo's own options with their values and vlc's --ckpt_path words."""
    main(["fit", "--config", str(CONFIGS / "demo" / "classify.yaml"), "--help"])
    out = capsys.readouterr().out
    assert "model (vlc.tasks.ImageClassifier):" in out
    assert "data (vlc.data.ShapesDataModule):" in out
    assert "--model.label_smoothing 0.1" in out  # the config's value, not the class default
    assert "--data.num_images 6000" in out
    assert "--trainer.max_epochs 6" in out
    ckpt = next(line for line in out.splitlines() if line.strip().startswith("--ckpt_path"))
    assert "'last'" in ckpt and "'best'" in ckpt and "'auto'" in ckpt
    assert "hpc" not in out and "registry" not in out  # Lightning's own --ckpt_path words mean nothing here
    assert len(out.splitlines()) < 150  # not Lightning's 509-line generic help


def test_help_of_a_predict_config_shows_what_it_requires(capsys):
    main(["predict", "--config", str(CONFIGS / "predict" / "classify.yaml"), "-h"])
    out = capsys.readouterr().out
    assert "--data.predict_dir REQUIRED" in out  # the config leaves it to the command line
    assert "--writer.output predictions/classify.csv" in out and "max_epochs" not in out


def test_help_without_a_config_lists_the_example_configs(capsys):
    main(["test", "--help"])
    out = capsys.readouterr().out
    assert "configs/demo/classify.yaml" in out and "configs/coco/attention.yaml" in out


@pytest.fixture
def fitted(tmp_path, monkeypatch, capsys):
    """A tiny TinyImageNet30 fit (its dataset folder holds test_labels.csv): the hint lines it printed."""
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "tin"
    write_tinyimagenet30(root)
    main(tiny_classifier_fit(root, "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1"))
    captured = capsys.readouterr()
    assert "Tip:" not in captured.out + captured.err  # Lightning's litlogger/litmodels advertisements
    assert "LeafSpec" not in captured.err and "model summary" not in captured.err
    lines = captured.out.splitlines()
    return root, [line.strip() for line in lines[lines.index("next:") + 1 :]]


@pytest.mark.slow
def test_the_closing_hints_run_as_printed(fitted, tmp_path, capsys):
    """The printed `vlc test` (no training-only flags, with the labels file) and `vlc predict` both run."""
    root, hints = fitted
    test = shlex.split(next(line for line in hints if " test " in line))
    assert not any(arg.startswith(("--trainer.max_epochs", "--trainer.limit_train")) for arg in test)
    assert test[test.index("--data.test_labels") + 1] == str(root / "test_labels.csv")
    assert run_cli(capsys, test[1:])[0] == 0
    predict = shlex.split(next(line for line in hints if " predict " in line))
    predict[predict.index("YOUR_IMAGES/")] = str(root / "test_set")
    out = tmp_path / "predictions.csv"
    main([*predict[1:], f"--writer.output={out}", "--trainer.enable_progress_bar=true"])
    assert len(out.read_text().splitlines()) == 1 + 6  # a header and the 6 test images
    lines = capsys.readouterr().out.splitlines()
    assert f"wrote 6 predictions to {out}" in lines  # a line of its own, not glued to the progress bar


@pytest.mark.slow
def test_a_test_without_labels_names_the_flag(fitted, tmp_path, capsys):
    """TinyImageNet30's test split needs --data.test_labels: the error says so, naming the file it would take."""
    root, hints = fitted
    test = shlex.split(next(line for line in hints if " test " in line))
    i = test.index("--data.test_labels")
    err = run_fails(capsys, test[1:i] + test[i + 2 :], code=2)
    assert f"vlc test needs --data.test_labels {root / 'test_labels.csv'}" in err
    assert not list((tmp_path / "logs").rglob("test")), "the failed test left a run folder behind"


@pytest.mark.slow
def test_the_task_kind_is_recorded_in_run_yaml_and_checkpoints(fitted, tmp_path):
    """The kind is written where it is read back (vlc compare, --ckpt_path checks), never guessed from contents."""
    (run,) = (tmp_path / "logs").rglob("run.yaml")
    assert yaml.safe_load(run.read_text())["kind"] == "classification"
    (last,) = (tmp_path / "checkpoints").rglob("last.ckpt")
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint["vlc_task"]["kind"] == "classification"
    checkpoint["hyper_parameters"]["vocab"] = {"words": []}  # what the old guess took for a captioner
    assert task_class(checkpoint) is ImageClassifier
