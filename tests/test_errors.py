"""User mistakes stop with one readable message naming the file or key, before training, without a traceback."""

import os
import resource
import shutil
import signal
import subprocess
import sys

import pytest
from helpers import CONFIGS, TINY_NET, run_fails, write_tinyimagenet30

from vlc.cli import main
from vlc.cli.parser import FAMILIES


def fit_args(root) -> list[str]:
    config = str(CONFIGS / "tinyimagenet30" / "cnn.yaml")
    return ["fit", "--config", config, f"--data.root={root}", "--trainer.max_epochs=1", *TINY_NET]


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_tinyimagenet30(tmp_path / "data", per_class=4)
    return tmp_path / "data"


def test_missing_root(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    err = run_fails(capsys, fit_args(tmp_path / "nowhere"))
    assert "data.root" in err and "nowhere" in err


def test_missing_class_file(data, capsys):
    (data / "class.txt").unlink()
    assert "class.txt: missing" in run_fails(capsys, fit_args(data))


def test_malformed_class_file(data, capsys):
    (data / "class.txt").write_text("0\tbaboon\nbanana\n")
    assert "class.txt, line 2" in run_fails(capsys, fit_args(data))


def test_missing_class_folder(data, capsys):
    shutil.rmtree(data / "train_set" / "banana")
    err = run_fails(capsys, fit_args(data))
    assert "banana" in err and "missing" in err


def test_empty_class(data, capsys):
    for file in (data / "train_set" / "bee").iterdir():
        file.unlink()
    err = run_fails(capsys, fit_args(data))
    assert "bee" in err and "no images" in err
    assert not (data.parent / "checkpoints").exists()  # stopped before any training


def test_unknown_config_key(data, capsys):
    err = run_fails(capsys, [*fit_args(data), "--model.init_args.no_such_key=1"])
    assert "no_such_key" in err


def test_unknown_key_in_yaml(data, tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text((CONFIGS / "tinyimagenet30" / "cnn.yaml").read_text().replace("val_fraction:", "val_fractoin:"))
    err = run_fails(capsys, ["fit", "--config", str(config), f"--data.root={data}"])
    assert "val_fractoin" in err


def test_checkpoint_with_other_class_count(data, tmp_path, capsys):
    main(fit_args(data))
    ckpt = tmp_path / "checkpoints" / "tinyimagenet30-cnn" / "version_0" / "last.ckpt"
    other = tmp_path / "other"
    write_tinyimagenet30(other, ("baboon", "banana", "bee", "bison"), per_class=4)
    config = str(CONFIGS / "tinyimagenet30" / "cnn.yaml")
    err = run_fails(capsys, ["validate", "--config", config, f"--data.root={other}", f"--ckpt_path={ckpt}", *TINY_NET])
    assert "3 classes" in err and "4" in err


def test_predict_needs_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = str(CONFIGS / "predict" / "classify.yaml")
    err = run_fails(capsys, ["predict", "--config", config, f"--data.predict_dir={tmp_path}"])
    assert "--ckpt_path" in err


def test_missing_checkpoint_file(data, capsys):
    err = run_fails(capsys, ["validate", *fit_args(data)[1:], "--ckpt_path=nothing.ckpt"])
    assert "nothing.ckpt" in err


def test_offline_torchvision_weights(data, capsys):
    config = str(CONFIGS / "tinyimagenet30" / "resnet18.yaml")
    err = run_fails(
        capsys,
        ["fit", "--config", config, f"--data.root={data}", "--model.init_args.backbone.init_args.weights=DEFAULT"],
    )
    assert "weights" in err and ("offline" in err or "download" in err)
    assert not (data.parent / "logs").exists()  # read right after the model is built, before any data


def test_empty_predict_folder(data, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    main(fit_args(data))
    ckpt = tmp_path / "checkpoints" / "tinyimagenet30-cnn" / "version_0" / "last.ckpt"
    config = str(CONFIGS / "predict" / "classify.yaml")
    err = run_fails(capsys, ["predict", "--config", config, f"--ckpt_path={ckpt}", f"--data.predict_dir={empty}"])
    assert "no readable images" in err


def test_cli_prints_no_traceback_for_nested_layout(tmp_path, monkeypatch):
    """The original zip's doubly nested layout is accepted (not an error)."""
    monkeypatch.chdir(tmp_path)
    write_tinyimagenet30(tmp_path / "data", per_class=4, nested=True)
    main(fit_args(tmp_path / "data"))
    assert (tmp_path / "checkpoints" / "tinyimagenet30-cnn" / "version_0" / "last.ckpt").is_file()
    assert os.listdir(tmp_path / "logs" / "tinyimagenet30-cnn")


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("--data.batch_size=0", "data.batch_size: expected a value > 0, got 0"),
        ("--data.batch_size=-1", "data.batch_size: expected a value > 0, got -1"),
        ("--data.image_size=0", "data.image_size: expected a value > 0, got 0"),
        ("--data.num_workers=-2", "data.num_workers: expected a value >= 0, got -2"),
        ("--trainer.max_epochs=-5", "trainer.max_epochs: expected -1 (no limit) or more, got -5"),
        ("--trainer.max_steps=-3", "trainer.max_steps: expected -1 (no limit) or more, got -3"),
        ("--model.init_args.top_k=0", "model.top_k: expected a value > 0, got 0"),
        ("--data.val_fraction=1.5", "data.val_fraction must be between 0 and 1, got 1.5"),  # raised in __init__
        ("--data.train_fraction=0", "data.train_fraction must be above 0 and at most 1, got 0.0"),
        (
            '--model.backbone={"class_path": "vlc.models.TorchvisionBackbone", "init_args": {"name": "nonet"}}',
            "unknown torchvision model 'nonet'; e.g. resnet18, resnet50, inception_v3",
        ),
        ("--model.backbone.whiten=true", "model.backbone: Option 'whiten' is not accepted" + FAMILIES),  # airbench's
        ("--model.backbone.weights=DEFAULT", "model.backbone: Option 'weights' is not accepted" + FAMILIES),
        (  # a config of the one ImageBackbone chosen by name, before the families
            '--model.backbone={"class_path": "vlc.models.ImageBackbone", "init_args": {"name": "cnn"}}',
            "model.backbone: Option 'name' is not accepted" + FAMILIES,
        ),
    ],
)
def test_bad_numbers_are_one_line_naming_the_key(data, capsys, arg, message):
    assert f"vlc: error: {message}\n" in run_fails(capsys, [*fit_args(data), arg])
    assert not (data.parent / "logs").exists()  # before anything was built


def predict_args(ckpt, folder, *extra) -> list[str]:
    config = str(CONFIGS / "predict" / "classify.yaml")
    return ["predict", "--config", config, f"--ckpt_path={ckpt}", f"--data.predict_dir={folder}", *extra]


def test_bad_numbers_and_unwritable_outputs_in_predict_stop_before_any_image_is_read(data, tmp_path, capsys):
    main(fit_args(data))
    ckpt = tmp_path / "checkpoints" / "tinyimagenet30-cnn" / "version_0" / "last.ckpt"
    folder = data / "test_set"
    (folder / "broken.jpg").write_text("not a jpeg: reading it would print a warning")
    (tmp_path / "a_file").write_text("")
    capsys.readouterr()
    err = run_fails(capsys, predict_args(ckpt, folder, "--data.image_size=0"))
    assert "vlc: error: data.image_size: expected a value > 0, got 0" in err
    for key in ("output", "submission"):
        err = run_fails(capsys, predict_args(ckpt, folder, f"--writer.{key}={tmp_path / 'a_file' / 'out.csv'}"))
        assert f"vlc: error: writer.{key}: cannot write to {tmp_path / 'a_file'}/ " in err and "is a file" in err
        assert "broken.jpg" not in err  # no image was read
    err = run_fails(capsys, [*fit_args(data), f"--trainer.logger.init_args.save_dir={tmp_path / 'a_file'}"])
    assert f"trainer.logger.init_args.save_dir: cannot write to {tmp_path / 'a_file'}/" in err


def test_a_prediction_file_that_cannot_be_written_is_one_line(data, tmp_path):
    main(fit_args(data))
    ckpt = tmp_path / "checkpoints" / "tinyimagenet30-cnn" / "version_0" / "last.ckpt"
    out = tmp_path / "preds.csv"

    def no_room() -> None:  # like a full disk: files may not grow beyond 100 bytes
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "vlc",
            *predict_args(ckpt, data / "test_set", "--data.image_size=16", f"--writer.output={out}"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=no_room,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"vlc: error: writer.output: cannot write {out} (File too large)" in result.stderr
    assert not out.exists() and not list(tmp_path.glob("preds*"))  # no partial file


def test_a_run_folder_that_cannot_be_written_stops_before_training_in_one_line(data, tmp_path):
    def no_room() -> None:  # like a full disk: files may not grow beyond 1,000 bytes (config.yaml needs more)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))

    result = subprocess.run(
        [sys.executable, "-m", "vlc", *fit_args(data)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=no_room,
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    folder = os.path.join("logs", "tinyimagenet30-cnn", "version_0")
    assert f"vlc: error: cannot write the run's config.yaml into {folder}/ (File too large)" in result.stderr
    assert not (tmp_path / "checkpoints").exists()


def test_version_and_help_list_every_command(capsys):
    main(["--version"])
    assert capsys.readouterr().out.startswith("vlc 0.1.0 (torch ")
    main(["--help"])
    out = capsys.readouterr().out
    assert all(f"  {command} " in out for command in ("fit", "validate", "test", "predict", "compare", "data"))
