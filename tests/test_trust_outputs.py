"""What vlc writes can be trusted: prediction and submission CSVs safe in a spreadsheet, ``top_k`` cells that parse
back, a skip list for a folder of only bad files, and ``vlc compare`` listing every run in natural order, whatever
logged it, with half runs as what they were."""

import csv
import json
import os
import shutil
from pathlib import Path

import pytest
from helpers import CONFIGS, run_cli, run_fails, tiny_classifier_fit, write_tinyimagenet30
from PIL import Image

from vlc.cli import main
from vlc.csv_cells import FORMULA_STARTS, cell, uncell

CLASSES = ("=HYPERLINK(1)", "+a;b:c", "@SUM(1)")
"""Class names that a spreadsheet runs as formulas, one of them with the old ``top_k`` separators."""


def fit_args(root: Path, *extra: str) -> list[str]:
    return tiny_classifier_fit(root, *extra)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny real classifier whose class names start like formulas: (work folder, its last.ckpt)."""
    work = tmp_path_factory.mktemp("outputs")
    write_tinyimagenet30(work / "data", CLASSES, per_class=4)
    cwd = os.getcwd()
    os.chdir(work)
    try:
        main(fit_args(work / "data"))
        yield work, work / "checkpoints" / "tinyimagenet30-cnn" / "version_0" / "last.ckpt"
    finally:
        os.chdir(cwd)


def predict_args(ckpt: Path, folder: Path, output: Path, *extra: str) -> list[str]:
    config = str(CONFIGS / "predict" / "classify.yaml")
    return ["predict", "--config", config, f"--ckpt_path={ckpt}", f"--data.predict_dir={folder}", *extra] + [
        "--data.image_size=16",
        f"--writer.output={output}",
    ]


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_prediction_csvs_neutralise_formulas_and_top_k_parses_back(trained, tmp_path, capsys):
    work, ckpt = trained
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("-x.png", "@x.png", "plain.png"):
        Image.new("RGB", (16, 16), (200, 30, 30)).save(folder / name)
    out, submission = tmp_path / "p.csv", tmp_path / "submission.csv"
    code, err = run_cli(capsys, predict_args(ckpt, folder, out, f"--writer.submission={submission}"))
    assert code == 0
    rows = read_csv(out)
    assert len(rows) == 3
    for row in rows:
        assert row["label"] in {"'" + name for name in CLASSES}  # every class name starts like a formula
        top = json.loads(row["top_k"])  # JSON in the cell: ';' and ':' in a class name round-trip
        assert {label for label, _ in top} == set(CLASSES)
        assert "'" + top[0][0] == row["label"] and abs(sum(p for _, p in top) - 1.0) < 1e-3
    ids = sorted(row["Id"] for row in read_csv(submission))
    assert ids == ["'-x.png", "'@x.png", "plain.png"]
    assert f"{submission}: 2 cells start with one of" in err  # said, not silent: a program must strip the '

    code, _ = run_cli(capsys, predict_args(ckpt, folder, tmp_path / "p.json"))
    assert code == 0
    assert {row["label"] for row in json.loads((tmp_path / "p.json").read_text())} <= set(CLASSES)  # JSON stays raw


def test_predict_folder_of_only_bad_files_lists_them(trained, tmp_path, capsys):
    _, ckpt = trained
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.jpg").write_text("not a jpeg")
    (folder / "b.png").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image")
    err = run_fails(capsys, predict_args(ckpt, folder, tmp_path / "p.csv"))
    assert "listed beside the predictions" in err and "no readable images" in err
    skipped = read_csv(tmp_path / "p.skipped.csv")  # the message is true: the list is there
    assert [Path(row["file"]).name for row in skipped] == ["a.jpg", "b.png", "notes.txt"]
    assert all(row["reason"] for row in skipped)
    assert read_csv(tmp_path / "p.csv") == []  # no predictions, and none left from an earlier run


def compare(capsys, *args: str) -> list[str]:
    """The lines ``vlc compare ARGS`` prints."""
    capsys.readouterr()
    main(["compare", *args])
    return capsys.readouterr().out.strip().splitlines()


def test_compare_lists_runs_of_every_logger_in_natural_order(trained, tmp_path, monkeypatch, capsys):
    work, _ = trained
    monkeypatch.chdir(tmp_path)
    for version in ("version_2", "version_10"):  # the tiny run's log folder under two versions' names
        shutil.copytree(work / "logs" / "tinyimagenet30-cnn" / "version_0", tmp_path / "logs" / "tb" / version)
    csv_logger = ["--trainer.logger=lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir=logs"]
    main(fit_args(work / "data", *csv_logger, "--trainer.logger.name=csv"))
    main(fit_args(work / "data", "--trainer.logger=false"))  # only checkpoints/version_0/last.ckpt

    lines = compare(capsys, "logs", "checkpoints", "--csv", "table.csv")
    runs = [line.split()[0] for line in lines[1:] if line.startswith(("logs/", "checkpoints"))]
    assert runs == ["logs/csv/version_0", "logs/tb/version_2", "logs/tb/version_10", "checkpoints/version_0"]
    rows = {line.split()[0]: line.split() for line in lines[1:4]}
    assert rows["logs/csv/version_0"][1:3] == ["fit", "complete"] and rows["logs/csv/version_0"][6] == "1"
    assert rows["logs/csv/version_0"][3] != "-"  # its validation accuracy, read from metrics.csv
    (checkpoint_only,) = [line.split() for line in lines if line.startswith("checkpoints/version_0 ")]
    assert checkpoint_only[1:3] == ["fit", "-"] and checkpoint_only[6] == "1"  # epochs from last.ckpt
    assert "known only from their last.ckpt" in lines[-1]
    table = {row["run"]: row for row in read_csv(tmp_path / "table.csv")}
    saved = table["checkpoints/version_0"]
    assert saved["task"] == "classification" and saved["epochs"] == "1"


def test_compare_half_runs_stopped_during_setup(trained, tmp_path, monkeypatch, capsys):
    work, _ = trained
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    shutil.copytree(work / "data", data)
    (data / "train_set" / CLASSES[0] / f"{CLASSES[0]}_1.JPEG").write_text("corrupt")  # stops the data's set-up
    run_fails(capsys, fit_args(data))  # version_0
    run_fails(capsys, fit_args(data))  # version_1: as a run killed during set-up (or an older vlc) leaves it
    (tmp_path / "logs" / "tinyimagenet30-cnn" / "version_1" / "run.yaml").unlink(missing_ok=True)

    lines = compare(capsys, "logs")
    assert lines[0].split()[:4] == ["run", "kind", "status", "val"]  # the classification table
    assert lines[1].split()[:3] == ["logs/tinyimagenet30-cnn/version_0", "fit", "failed"]
    assert lines[1].split()[6] == "0"  # epochs
    assert lines[2] == "" and lines[3].startswith("not listed: logs/tinyimagenet30-cnn/version_1: nothing logged")
    assert len(lines) == 4


@pytest.mark.parametrize("text", ["=1+1", "-x", "+x", "@x", "\tx", "plain", "'quoted", "'=already", "''+twice", ""])
def test_a_neutralised_cell_reads_back_as_written(text):
    written = cell(text)
    assert not written.startswith(FORMULA_STARTS) and uncell(written) == text
