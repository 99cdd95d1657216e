"""Building TinyImageNet30 from a fake tiny-imagenet-200: the layout, the chosen images, the errors."""

import csv
import shutil

import pytest
from PIL import Image

from vlc.data.datasets.build_tinyimagenet30 import CLASSES, build_tinyimagenet30
from vlc.errors import UserError

TRAIN_PER_CLASS = 3
EXTRA_WNID = "n99999999"  # a Tiny ImageNet class outside the 30: ignored


def write_tiny_imagenet(root, train_ids=(0, 1, 2, 9, 10), val_per_class=2):
    """A fake ``tiny-imagenet-200`` of 8x8 JPEGs; with ids 9 and 10 a string sort picks the wrong ones."""
    wnids = [*CLASSES.values(), EXTRA_WNID]
    (root / "val" / "images").mkdir(parents=True)
    (root / "wnids.txt").write_text("".join(f"{wnid}\n" for wnid in wnids))
    image = Image.new("RGB", (8, 8), (200, 100, 50))
    annotations, n = [], 0
    for wnid in wnids:
        folder = root / "train" / wnid / "images"
        folder.mkdir(parents=True)
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
        for i in train_ids:
            image.save(folder / f"{wnid}_{i}.JPEG")
        for _ in range(val_per_class):
            image.save(root / "val" / "images" / f"val_{n}.JPEG")
            annotations.append(f"val_{n}.JPEG\t{wnid}\t0\t0\t7\t7\n")
            n += 1
    (root / "val" / "val_annotations.txt").write_text("".join(reversed(annotations)))
    return root


@pytest.fixture
def source(tmp_path):
    return write_tiny_imagenet(tmp_path / "download" / "tiny-imagenet-200")


def test_builds_the_coursework_layout(source, tmp_path):
    out = tmp_path / "out"
    counts = build_tinyimagenet30(source, out, train_per_class=TRAIN_PER_CLASS)
    assert counts == {"train": 30 * TRAIN_PER_CLASS, "test": 30 * 2}
    names = sorted(CLASSES)
    assert list(CLASSES) == names
    assert (out / "class.txt").read_text() == "".join(f"{i}\t{name}\n" for i, name in enumerate(names))
    assert sorted(p.name for p in (out / "train_set").iterdir()) == names
    for name, wnid in CLASSES.items():
        # numeric order: 0, 1, 2 are kept; 9 and 10 (which sorts before 2 as a string) are not
        chosen = sorted(p.name for p in (out / "train_set" / name).iterdir())
        assert chosen == [f"{wnid}_{i}.JPEG" for i in (0, 1, 2)]
    assert not list(out.glob(".partial-*"))


def test_test_labels_match_val_annotations(source, tmp_path):
    out = tmp_path / "out"
    build_tinyimagenet30(source, out, train_per_class=TRAIN_PER_CLASS)
    index = {wnid: i for i, wnid in enumerate(CLASSES.values())}
    expected = {}
    for line in (source / "val" / "val_annotations.txt").read_text().splitlines():
        file, wnid = line.split("\t")[:2]
        if wnid in index:
            expected[file] = str(index[wnid])
    with (out / "test_labels.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["Id", "Category"]
        rows = {row["Id"]: row["Category"] for row in reader}
    assert rows == expected and len(rows) == 60
    assert sorted(p.name for p in (out / "test_set").iterdir()) == sorted(expected)
    first = next(iter(expected))
    assert (out / "test_set" / first).read_bytes() == (source / "val" / "images" / first).read_bytes()


def test_accepts_the_parent_folder(source, tmp_path):
    counts = build_tinyimagenet30(source.parent, tmp_path / "out", train_per_class=TRAIN_PER_CLASS)
    assert counts["train"] == 30 * TRAIN_PER_CLASS


def test_missing_source(tmp_path):
    with pytest.raises(UserError, match="nowhere.*not found"):
        build_tinyimagenet30(tmp_path / "nowhere", tmp_path / "out")


def test_missing_class_folder(source, tmp_path):
    shutil.rmtree(source / "train" / CLASSES["koala"])
    with pytest.raises(UserError, match=r"n01882714.*missing.*'koala' \(n01882714\)"):
        build_tinyimagenet30(source, tmp_path / "out", train_per_class=TRAIN_PER_CLASS)
    assert not (tmp_path / "out").exists()


def test_too_few_training_images(source, tmp_path):
    with pytest.raises(UserError, match="5 images of class 'baboon'.*at least 450"):
        build_tinyimagenet30(source, tmp_path / "out")


def test_missing_val_annotations(source, tmp_path):
    (source / "val" / "val_annotations.txt").unlink()
    with pytest.raises(UserError, match="val_annotations.txt: missing"):
        build_tinyimagenet30(source, tmp_path / "out", train_per_class=TRAIN_PER_CLASS)


def test_class_without_val_images(source, tmp_path):
    annotations = source / "val" / "val_annotations.txt"
    lines = annotations.read_text().splitlines(keepends=True)
    annotations.write_text("".join(line for line in lines if CLASSES["pig"] not in line))
    with pytest.raises(UserError, match=r"no validation images of class 'pig' \(n02395406\)"):
        build_tinyimagenet30(source, tmp_path / "out", train_per_class=TRAIN_PER_CLASS)


def test_refuses_a_non_empty_output(source, tmp_path):
    out = tmp_path / "out"
    (out / "train_set" / "mine").mkdir(parents=True)
    (out / "train_set" / "mine" / "keep.txt").write_text("user data")
    with pytest.raises(UserError, match="train_set: already exists.*refusing to overwrite"):
        build_tinyimagenet30(source, out, train_per_class=TRAIN_PER_CLASS)
    assert (out / "train_set" / "mine" / "keep.txt").read_text() == "user data"
    assert sorted(p.name for p in out.iterdir()) == ["train_set"]


def test_empty_output_folders_are_fine(source, tmp_path):
    out = tmp_path / "out"
    (out / "train_set").mkdir(parents=True)
    (out / "test_set").mkdir()
    counts = build_tinyimagenet30(source, out, train_per_class=TRAIN_PER_CLASS)
    assert counts == {"train": 90, "test": 60}


def test_vlc_data_command_builds_and_reports(tmp_path, capsys):
    from vlc.cli import main

    source = write_tiny_imagenet(tmp_path / "src", train_ids=(0, 1, 2), val_per_class=1)
    main(["data", "tinyimagenet30", "--source", str(source), "--out", str(tmp_path / "out"), "--train-per-class=3"])
    assert "train 90, test 30" in capsys.readouterr().out
    assert (tmp_path / "out" / "class.txt").is_file()
    with pytest.raises(SystemExit):
        main(["data", "tinyimagenet30", "--source", str(tmp_path / "missing"), "--out", str(tmp_path / "o2")])
    assert "vlc: error:" in capsys.readouterr().err
