"""Data inputs that must not be trusted blindly: class folders, test labels, annotation paths and symlink loops.

Each mistake stops the run with one line naming the file and the entry, before anything is trained or logged.
"""

import csv
import os
import shutil

import pytest
from helpers import CONFIGS, FAST_PRECISION, TINY_NET, run_cli, run_fails, tiny_captioner, write_tinyimagenet30
from test_caption_data import write_coco

from vlc.cli import main

CLASSES = ("baboon", "banana", "bee")


def classify(root, *extra: str) -> list[str]:
    """CLI arguments of the tiny TinyImageNet30 CNN on ``root``."""
    return [
        "--config",
        str(CONFIGS / "tinyimagenet30" / "cnn.yaml"),
        f"--data.root={root}",
        "--data.batch_size=4",
        "--trainer.max_time=null",
        f"--trainer.precision={FAST_PRECISION}",
        "--trainer.enable_progress_bar=false",
        *TINY_NET,
        *extra,
    ]


def error_line(capsys, args: list[str]) -> str:
    """The one error line of a run that must stop with exit code 2."""
    err = run_fails(capsys, args)
    (line,) = [line for line in err.splitlines() if line.startswith("vlc: error:")]
    return line


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_tinyimagenet30(tmp_path / "data", CLASSES, per_class=4)
    return tmp_path / "data"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A one-epoch run on a tiny TinyImageNet30: its folder and its ``last.ckpt``."""
    work = tmp_path_factory.mktemp("trained")
    write_tinyimagenet30(work / "data", CLASSES, per_class=4)
    cwd = os.getcwd()
    os.chdir(work)
    try:
        main(["fit", *classify(work / "data", "--trainer.max_epochs=1")])
    finally:
        os.chdir(cwd)
    return work, work / "checkpoints" / "tinyimagenet30-cnn" / "version_0" / "last.ckpt"


def write_labels(path, rows) -> str:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([("Id", "Category"), *rows])
    return str(path)


ALL_TEST_ROWS = [(f"test_{label}_{i}.JPEG", label) for label in range(3) for i in range(2)]


# -- 1. class folders and class.txt ------------------------------------------------------------------------------
def test_a_class_folder_that_class_txt_does_not_list_stops_the_run(data, capsys):
    shutil.copytree(data / "train_set" / "bee", data / "train_set" / "zebra")
    line = error_line(capsys, ["fit", *classify(data, "--trainer.max_epochs=1")])
    assert str(data / "train_set") in line and "'zebra'" in line and "class.txt" in line
    assert not (data.parent / "checkpoints").exists()


def test_unlisted_folders_and_classes_without_folder_are_named_together(data, capsys):
    shutil.copytree(data / "train_set" / "bee", data / "train_set" / "zebra")
    shutil.copytree(data / "train_set" / "bee", data / "train_set" / "wasp")
    shutil.rmtree(data / "train_set" / "banana")
    shutil.rmtree(data / "train_set" / "baboon")
    line = error_line(capsys, ["fit", *classify(data, "--trainer.max_epochs=1")])
    assert "'baboon', 'banana'" in line and "'wasp', 'zebra'" in line


# -- 2. test labels that repeat an image or leave images of test_set out -------------------------------------------
def test_a_repeated_test_label_id_is_an_error_naming_the_lines(trained, tmp_path, monkeypatch, capsys):
    work, ckpt = trained
    monkeypatch.chdir(work)
    rows = [*ALL_TEST_ROWS[:3], ("test_0_1.JPEG", 2), *ALL_TEST_ROWS[3:]]
    labels = write_labels(tmp_path / "labels.csv", rows)
    line = error_line(capsys, ["test", *classify(work / "data"), f"--ckpt_path={ckpt}", f"--data.test_labels={labels}"])
    assert line == f"vlc: error: {labels}, line 5: Id 'test_0_1.JPEG' is already listed on line 3"


def test_test_labels_missing_images_of_test_set_is_an_error_with_the_count(trained, tmp_path, monkeypatch, capsys):
    work, ckpt = trained
    monkeypatch.chdir(work)
    labels = write_labels(tmp_path / "labels.csv", ALL_TEST_ROWS[1:4])  # 3 of the 6 test images
    line = error_line(capsys, ["test", *classify(work / "data"), f"--ckpt_path={ckpt}", f"--data.test_labels={labels}"])
    assert f"{labels}: no row for 3 of the 6 images of {work / 'data' / 'test_set'}" in line
    assert "test_0_0.JPEG, test_2_0.JPEG, test_2_1.JPEG" in line


# -- 3. an empty labels file ---------------------------------------------------------------------------------------
def test_an_empty_labels_file_stops_before_logging_keeping_the_earlier_score(trained, tmp_path, monkeypatch, capsys):
    work, ckpt = trained
    monkeypatch.chdir(work)
    test = ["test", *classify(work / "data"), f"--ckpt_path={ckpt}"]
    code, _ = run_cli(capsys, [*test, f"--data.test_labels={work / 'data' / 'test_labels.csv'}"])
    assert code == 0
    empty = write_labels(tmp_path / "empty.csv", [])
    line = error_line(capsys, [*test, f"--data.test_labels={empty}"])
    assert line == f"vlc: error: {empty}: no rows; expected a line 'Id,Category' for each image of test_set"
    code, _ = run_cli(capsys, ["compare", "logs", "--csv", str(tmp_path / "table.csv")])
    assert code == 0
    with open(tmp_path / "table.csv") as f:
        (row,) = csv.DictReader(f)
    assert 0.0 <= float(row["test_acc"]) <= 1.0  # the earlier test's score


def test_an_interrupted_test_keeps_the_earlier_score_in_compare(trained, tmp_path, monkeypatch, capsys):
    work, ckpt = trained
    monkeypatch.chdir(tmp_path)
    shutil.copytree(work / "logs", tmp_path / "logs")
    labels = work / "data" / "test_labels.csv"
    test = ["test", *classify(work / "data"), f"--ckpt_path={ckpt}", f"--data.test_labels={labels}"]
    code, _ = run_cli(capsys, test)
    assert code == 0
    table = tmp_path / "table.csv"
    run_cli(capsys, ["compare", "logs", "--csv", str(table)])
    with open(table) as f:
        (scored,) = csv.DictReader(f)
    sessions = len(list((tmp_path / "logs").rglob("test/events.out.tfevents.*")))
    # the next test stops at its first batch, after its logger wrote an event file without scores
    err = run_fails(capsys, [*test, "--trainer.callbacks+=faults.TestFault"], code=130)
    assert "interrupted by SIGINT" in err
    assert len(list((tmp_path / "logs").rglob("test/events.out.tfevents.*"))) == sessions + 1
    run_cli(capsys, ["compare", "logs", "--csv", str(table)])
    with open(table) as f:
        (row,) = csv.DictReader(f)
    assert row["test_acc"] == scored["test_acc"] != ""


# -- 4. annotation paths that leave their folder ------------------------------------------------------------------
def test_a_test_label_id_outside_test_set_is_an_error(trained, tmp_path, monkeypatch, capsys):
    work, ckpt = trained
    monkeypatch.chdir(work)
    rows = [*ALL_TEST_ROWS[:5], ("../train_set/bee/bee_0.JPEG", 2)]
    labels = write_labels(tmp_path / "labels.csv", rows)
    line = error_line(capsys, ["test", *classify(work / "data"), f"--ckpt_path={ckpt}", f"--data.test_labels={labels}"])
    assert f"{labels}, line 7: Id '../train_set/bee/bee_0.JPEG' is not inside" in line


@pytest.mark.parametrize("outside", ["../outside.jpg", "ABSOLUTE"])
def test_a_coco_file_name_outside_images_dir_is_an_error(tmp_path, monkeypatch, capsys, outside):
    monkeypatch.chdir(tmp_path)
    images_dir, _ = write_coco(tmp_path / "coco", n=8)
    shutil.copy(next(images_dir.glob("*.jpg")), tmp_path / "coco" / "outside.jpg")
    name = str(tmp_path / "coco" / "outside.jpg") if outside == "ABSOLUTE" else outside
    _, captions = write_coco(
        tmp_path / "coco",
        n=8,
        extra_images=[{"id": 7, "file_name": name}],
        extra_annotations=[{"image_id": 7, "id": 7, "caption": "A picture from elsewhere."}],
    )
    args = ["fit", *tiny_captioner(images_dir, captions), "--trainer.max_epochs=1", "--data.split=[0.5, 0.25, 0.25]"]
    line = error_line(capsys, args)
    assert line.startswith(f"vlc: error: {captions}: images[8] has file_name {name!r}, outside data.images_dir")


# -- 5. symbolic link loops ----------------------------------------------------------------------------------------
def test_a_symlink_loop_among_images_is_named_as_a_loop(data, capsys):
    folder = data / "train_set" / "bee"
    (folder / "a.JPEG").symlink_to("b.JPEG")
    (folder / "b.JPEG").symlink_to("a.JPEG")
    err = run_fails(capsys, ["fit", *classify(data, "--trainer.max_epochs=1")])
    assert f"cannot read {folder / 'a.JPEG'}: symbolic link loop" in err
    assert f"cannot read {folder / 'b.JPEG'}: symbolic link loop" in err
    assert "broken" not in err
