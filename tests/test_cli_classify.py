"""The classification workflow through the real CLI: fit -> validate -> test -> predict, then read the artefacts."""

import csv
import json
import os
from pathlib import Path

import pytest
import torch
from helpers import CONFIGS, TINY_NET, events, run_dirs, write_tinyimagenet30

from vlc.cli import main

CLASSES = ("baboon", "banana", "bee")


def common(root: Path) -> list[str]:
    return [
        "--config",
        str(CONFIGS / "tinyimagenet30" / "cnn.yaml"),
        f"--data.root={root}",
        "--data.batch_size=8",
        "--trainer.max_time=null",
        *TINY_NET,
    ]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short real training run on a tiny TinyImageNet30-format dataset, shared by the tests below."""
    work = tmp_path_factory.mktemp("run")
    labels = write_tinyimagenet30(work / "data", CLASSES, per_class=10)
    cwd = os.getcwd()
    os.chdir(work)
    try:
        main(["fit", *common(work / "data"), "--trainer.max_epochs=2", "--trainer.log_every_n_steps=1"])
        yield work, labels
    finally:
        os.chdir(cwd)


def test_fit_logs_curves_figures_and_checkpoints(trained):
    work, _ = trained
    (run,) = run_dirs(work / "logs")
    acc = events(run)
    scalars = set(acc.Tags()["scalars"])
    for tag in ("train/loss_epoch", "train/acc_epoch", "train/loss_step", "val/loss", "val/acc", "val/acc_top5"):
        assert tag in scalars, tag
    assert {"val/f1_macro", "val/auroc_macro", "lr-SGD"} <= scalars
    assert len(acc.Scalars("val/acc")) == 2  # one point per epoch, no gaps
    assert len(acc.Scalars("train/loss_epoch")) == 2
    images = set(acc.Tags()["images"])
    assert {"val/confusion_matrix", "val/roc"} <= images
    assert len(acc.Images("val/confusion_matrix")) == 2
    assert (run / "hparams.yaml").is_file() and (run / "config.yaml").is_file()
    assert "_hparams_/session_start_info" in acc.PluginTagToContent("hparams")  # the HPARAMS tab
    assert "hp/best_val_acc" in scalars
    ckpts = sorted(p.name for p in (work / "checkpoints" / "tinyimagenet30-cnn" / "version_0").glob("*.ckpt"))
    assert "last.ckpt" in ckpts and any(name.startswith("best-epoch") for name in ckpts)
    hparams = torch.load(work / "checkpoints" / "tinyimagenet30-cnn" / "version_0" / "last.ckpt", weights_only=False)[
        "hyper_parameters"
    ]
    assert hparams["num_classes"] == 3 and hparams["class_names"] == list(CLASSES)


def test_validate_and_test_with_labels(trained, capsys):
    work, labels = trained
    os.chdir(work)
    ckpt = str(work / "checkpoints" / "tinyimagenet30-cnn" / "version_0" / "last.ckpt")
    main(["validate", *common(work / "data"), f"--ckpt_path={ckpt}"])
    main(["test", *common(work / "data"), f"--ckpt_path={ckpt}", f"--data.test_labels={labels}"])
    out = capsys.readouterr().out
    assert "val/acc" in out and "test/acc" in out
    test_run = run_dirs(work / "logs")[-1]
    acc = events(test_run)
    assert "test/acc" in acc.Tags()["scalars"]
    assert {"test/confusion_matrix", "test/roc"} <= set(acc.Tags()["images"])


def test_predict_folder_csv_and_json(trained, tmp_path):
    work, _ = trained
    os.chdir(work)
    ckpt = str(work / "checkpoints" / "tinyimagenet30-cnn" / "version_0" / "last.ckpt")
    folder = work / "data" / "test_set"
    n_images = len(list(folder.glob("*.JPEG")))
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.jpg").write_text("not a jpeg either")
    for output in ("preds.csv", "preds.json"):
        main(
            [
                "predict",
                "--config",
                str(CONFIGS / "predict" / "classify.yaml"),
                f"--ckpt_path={ckpt}",
                f"--data.predict_dir={folder}",
                "--data.image_size=16",
                f"--writer.output={tmp_path / output}",
            ]
        )
    with open(tmp_path / "preds.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == n_images
    assert {Path(r["file"]).name for r in rows} == {p.name for p in folder.glob("*.JPEG")}
    for row in rows:
        assert row["label"] in CLASSES
        top = json.loads(row["top_k"])
        assert len(top) == 3 and top[0][0] == row["label"]
        assert abs(sum(float(p) for _, p in top) - 1.0) < 1e-3  # 3 classes: top-3 covers all the mass
    json_rows = json.loads((tmp_path / "preds.json").read_text())
    assert [r["file"] for r in json_rows] == [r["file"] for r in rows]
    assert [r["label"] for r in json_rows] == [r["label"] for r in rows]


def test_predict_submission_from_test_set(trained, tmp_path):
    work, _ = trained
    os.chdir(work)
    ckpt = str(work / "checkpoints" / "tinyimagenet30-cnn" / "version_0" / "last.ckpt")
    main(
        [
            "predict",
            *common(work / "data"),
            f"--ckpt_path={ckpt}",
            f"--writer.output={tmp_path / 'p.csv'}",
            f"--writer.submission={tmp_path / 'submission.csv'}",
        ]
    )
    with open(tmp_path / "submission.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["Id", "Category"]
    assert sorted(r[0] for r in rows[1:]) == sorted(p.name for p in (work / "data" / "test_set").glob("*.JPEG"))
    assert all(r[1] in {"0", "1", "2"} for r in rows[1:])


def test_resume_from_last(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_tinyimagenet30(tmp_path / "data", CLASSES, per_class=4)
    args = ["fit", *common(tmp_path / "data")]
    last = tmp_path / "checkpoints" / "tinyimagenet30-cnn" / "version_0" / "last.ckpt"
    main([*args, "--trainer.max_epochs=1"])
    first = torch.load(last, weights_only=False)["global_step"]
    main([*args, "--trainer.max_epochs=2", "--ckpt_path=last"])  # one-cycle: re-sized to the longer run
    assert torch.load(last, weights_only=False)["global_step"] == 2 * first  # continued, not restarted
    assert [p.name for p in (tmp_path / "logs" / "tinyimagenet30-cnn").iterdir()] == ["version_0"]  # one run


def test_print_config_is_complete(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(CONFIGS / "demo" / "classify.yaml"), "--print_config"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "vlc.data.ShapesDataModule" in out and "vlc.models.ResidualCNN" in out
