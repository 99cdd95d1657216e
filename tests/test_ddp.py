"""Two CPU processes (DDP): training works and prediction writes one complete file, not one per rank."""

import csv

import pytest
from helpers import CONFIGS, TINY_NET, run_fails, write_tinyimagenet30

from vlc.cli import main

pytestmark = pytest.mark.slow


def test_ddp_fit_and_predict(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_tinyimagenet30(tmp_path / "data", per_class=6, test_per_class=5)
    ddp = ["--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp_spawn"]
    config = str(CONFIGS / "tinyimagenet30" / "cnn.yaml")
    main(["fit", "--config", config, f"--data.root={tmp_path / 'data'}", "--trainer.max_epochs=1", *TINY_NET, *ddp])
    ckpt = tmp_path / "checkpoints" / "tinyimagenet30-cnn" / "version_0" / "last.ckpt"
    assert ckpt.is_file()
    folder = tmp_path / "data" / "test_set"  # 15 images: an odd count, so the sampler pads one rank
    main(
        [
            "predict",
            "--config",
            str(CONFIGS / "predict" / "classify.yaml"),
            f"--ckpt_path={ckpt}",
            f"--data.predict_dir={folder}",
            "--data.image_size=16",
            "--data.batch_size=4",
            f"--writer.output={tmp_path / 'out.csv'}",
            *ddp,
        ]
    )
    with open(tmp_path / "out.csv") as f:
        files = [row["file"] for row in csv.DictReader(f)]
    assert sorted(files) == sorted(str(p) for p in folder.glob("*.JPEG"))  # complete, no duplicate
    assert sorted(p.name for p in tmp_path.glob("out*.csv")) == ["out.csv", "out.skipped.csv"]  # not one per rank


def test_ddp_divergence_stops_every_process_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_tinyimagenet30(tmp_path / "data", per_class=8)
    ddp = ["--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp_spawn"]
    nan = ["--trainer.callbacks+=faults.Fault", "--trainer.callbacks.step=3", "--trainer.callbacks.fault=nan"]
    config = str(CONFIGS / "tinyimagenet30" / "cnn.yaml")
    args = ["fit", "--config", config, f"--data.root={tmp_path / 'data'}", "--data.batch_size=4", *TINY_NET]
    err = run_fails(capsys, [*args, "--trainer.max_epochs=2", *ddp, *nan], code=3)
    assert "vlc: error: training diverged at epoch 1, step 4: the loss is nan" in err
