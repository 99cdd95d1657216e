"""Images as phones, cameras and web scrapes produce them: what the model receives, what is skipped and why."""

import csv
import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import CONFIGS, TINY_NET, run_cli, write_tinyimagenet30
from PIL import Image

from vlc.cli import main
from vlc.data import ImageFolderDataModule, TinyImageNet30DataModule
from vlc.images import BadImage, ImageReader


def rgb(image: torch.Tensor) -> tuple[int, int, int]:
    """The colour of the top-left pixel of a ``(3, H, W)`` tensor."""
    return tuple(image[:, 0, 0].tolist())


def jpeg_bytes(size=(24, 24)) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 255, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, "JPEG")
    return buffer.getvalue()


def _png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def write_wild_folder(folder: Path) -> dict[str, str]:
    """Every kind of input in ``folder``; returns the expected skip reason (start) of each file that is skipped."""
    folder.mkdir(parents=True)
    stored = Image.new("RGB", (8, 4), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 4, 4))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    stored.save(folder / "portrait.jpg", exif=exif, quality=95)
    Image.fromarray(np.full((4, 4), 32896, dtype=np.uint16)).save(folder / "grey16.png")  # 32896 / 257 = 128
    rgba = Image.new("RGBA", (2, 1), (10, 20, 30, 0))  # fully transparent: its colour must not show
    rgba.putpixel((1, 0), (200, 0, 0, 255))
    rgba.save(folder / "rgba.png")
    palette = Image.new("P", (2, 1), 0)
    palette.putpalette([0, 255, 0, 0, 0, 255])
    palette.putpixel((1, 0), 1)
    palette.save(folder / "palette.png", transparency=0)  # index 0 (green) is transparent
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(folder / "cmyk.jpg", quality=95)  # red
    Image.new("L", (4, 4), 77).save(folder / "grey.png")
    frames = [Image.new("RGB", (4, 4), (255, 0, 0)), Image.new("RGB", (4, 4), (0, 0, 255))]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    Image.new("RGB", (4, 4), (1, 2, 3)).save(folder / "scan.tiff")
    Image.new("RGB", (1, 1), (9, 8, 7)).save(folder / "one.png")
    Image.new("RGB", (4, 4), (50, 60, 70)).save(folder / "café photo ü.png")
    (folder / "link.png").symlink_to(folder / "one.png")
    (folder / "a").mkdir()
    (folder / "b").mkdir()
    Image.new("RGB", (4, 4), (1, 1, 1)).save(folder / "a" / "same.png")
    Image.new("RGB", (4, 4), (2, 2, 2)).save(folder / "b" / "same.png")
    # what is skipped, and why
    (folder / "truncated.jpg").write_bytes(jpeg_bytes()[:-200])  # its header is fine: found while decoding
    png = bytearray(_png_bytes())
    start = png.index(b"IDAT") + 40
    png[start : start + 60] = bytes(60)  # damaged pixel data behind a whole header
    (folder / "corrupt.png").write_bytes(bytes(png))
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("this is not a picture")
    Image.new("1", (9500, 9500)).save(folder / "bomb.png")  # 90 million pixels in a few KB
    (folder / "gone.png").symlink_to(folder / "deleted.png")
    (folder / "notes.txt").write_text("not an image")
    (folder / "photo.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    return {
        "truncated.jpg": "cannot decode the pixel data (image file is truncated",
        "corrupt.png": "cannot decode the pixel data (broken data stream",
        "zero.jpg": "empty file (0 bytes)",
        "text.jpg": "not an image file (Pillow cannot identify its format)",
        "bomb.png": "too large: 9500x9500 = 90,250,000 pixels, over the limit of 89,478,485",
        "gone.png": "broken symbolic link",
        "notes.txt": "not an image file name",
        "photo.heic": "HEIC images are not supported",
    }


def test_the_reader_gives_upright_8_bit_rgb_for_every_kind_of_file(tmp_path):
    write_wild_folder(tmp_path / "in")
    read = ImageReader()
    folder = tmp_path / "in"
    portrait = read(folder / "portrait.jpg")
    assert portrait.shape == (3, 8, 4)  # stored 8 wide, 4 high; shown upright 4 wide, 8 high
    top, bottom = portrait[:, :4].float().mean((1, 2)), portrait[:, 4:].float().mean((1, 2))
    assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60  # the red half is on top
    assert read(folder / "grey16.png").unique().tolist() == [128]  # not white
    rgba = read(folder / "rgba.png")
    assert rgb(rgba) == (255, 255, 255) and tuple(rgba[:, 0, 1].tolist()) == (200, 0, 0)
    palette = read(folder / "palette.png")
    assert rgb(palette) == (255, 255, 255) and tuple(palette[:, 0, 1].tolist()) == (0, 0, 255)
    red = read(folder / "cmyk.jpg")[:, 0, 0].tolist()
    assert red[0] > 230 and red[1] < 25 and red[2] < 25
    assert read(folder / "grey.png").unique().tolist() == [77]
    assert rgb(read(folder / "animated.gif")) == (255, 0, 0)  # the first frame
    assert rgb(read(folder / "scan.tiff")) == (1, 2, 3)
    one = ImageReader(size=4)(folder / "one.png")
    assert one.shape == (3, 4, 4) and one.unique().tolist() == [7, 8, 9]
    assert rgb(read(folder / "café photo ü.png")) == (50, 60, 70)
    assert rgb(read(folder / "link.png")) == (9, 8, 7)
    assert ImageReader(max_pixels=16)(folder / "grey.png").shape == (3, 4, 4)  # the limit is configurable
    with pytest.raises(BadImage, match="too large: 4x4 = 16 pixels, over the limit of 15"):
        ImageReader(max_pixels=15)(folder / "grey.png")


def test_the_loader_leaves_undecodable_files_out_and_records_why(tmp_path):
    expected = write_wild_folder(tmp_path / "in")
    dm = ImageFolderDataModule(str(tmp_path / "in"), image_size=8, batch_size=64)
    dm.setup("predict")
    batch = dm.on_after_batch_transfer(next(iter(dm.predict_dataloader())), 0)
    images, files = batch["images"], batch["files"]
    names = sorted(Path(f).relative_to(tmp_path / "in").as_posix() for f in files)
    assert images.shape == (len(files), 3, 8, 8) and images.dtype == torch.uint8
    assert names == sorted(
        ["portrait.jpg", "grey16.png", "rgba.png", "palette.png", "cmyk.jpg", "grey.png", "animated.gif"]
        + ["scan.tiff", "one.png", "café photo ü.png", "link.png", "a/same.png", "b/same.png"]
    )
    reasons = {Path(u.path).name: u.reason for u in dm.bad_images.found}
    assert sorted(reasons) == sorted(expected)
    for name, start in expected.items():
        assert reasons[name].startswith(start), (name, reasons[name])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny classifier trained for one epoch on 16x16 images."""
    work = tmp_path_factory.mktemp("train")
    write_tinyimagenet30(work / "data", per_class=4)
    cwd = os.getcwd()
    os.chdir(work)
    try:
        main(
            ["fit", "--config", str(CONFIGS / "tinyimagenet30" / "cnn.yaml"), f"--data.root={work / 'data'}"]
            + ["--trainer.max_epochs=1", "--trainer.max_time=null", *TINY_NET]
        )
    finally:
        os.chdir(cwd)
    return work / "checkpoints" / "tinyimagenet30-cnn" / "version_0" / "last.ckpt"


def test_predict_gives_every_readable_image_a_row_and_lists_every_skip(checkpoint, tmp_path, capsys, recwarn):
    expected = write_wild_folder(tmp_path / "in")
    out = tmp_path / "out" / "preds.csv"
    main(
        ["predict", "--config", str(CONFIGS / "predict" / "classify.yaml"), f"--ckpt_path={checkpoint}"]
        + [f"--data.predict_dir={tmp_path / 'in'}", "--data.image_size=16", f"--writer.output={out}"]
        + [f"--writer.submission={tmp_path / 'out' / 'submission.csv'}"]
    )
    with out.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 13 and len({row["file"] for row in rows}) == 13
    assert str(tmp_path / "in" / "café photo ü.png") in {row["file"] for row in rows}
    with (tmp_path / "out" / "preds.skipped.csv").open(encoding="utf-8") as f:
        skipped = {Path(row["file"]).name: row["reason"] for row in csv.DictReader(f)}
    assert sorted(skipped) == sorted(expected)
    for name, start in expected.items():
        assert skipped[name].startswith(start), (name, skipped[name])
    with (tmp_path / "out" / "submission.csv").open(encoding="utf-8") as f:
        ids = [row["Id"] for row in csv.DictReader(f)]
    assert len(ids) == 13 and {"a/same.png", "b/same.png", "portrait.jpg"} <= set(ids)
    # no advice to add the training callbacks, which prediction does not need
    assert not [w for w in recwarn if "callbacks used to create the checkpoint" in str(w.message)]
    assert f"skipped 8 files that could not be read, listed in {tmp_path / 'out' / 'preds.skipped.csv'}" in (
        capsys.readouterr().out
    )


def fit(root: Path, *extra: str) -> list[str]:
    config = str(CONFIGS / "tinyimagenet30" / "cnn.yaml")
    return ["fit", "--config", config, f"--data.root={root}", "--trainer.max_epochs=1", *TINY_NET, *extra]


@pytest.fixture
def damaged(tmp_path, monkeypatch) -> Path:
    """A TinyImageNet30 folder of 3 x 10 images, two of which cannot be read at all and one is truncated."""
    monkeypatch.chdir(tmp_path)
    write_tinyimagenet30(tmp_path / "data", per_class=10)
    train = tmp_path / "data" / "train_set"
    (train / "baboon" / "baboon_3.JPEG").write_bytes(b"")
    (train / "bee" / "bee_5.JPEG").write_text("<html>404 not found</html>")
    (train / "banana" / "banana_1.JPEG").write_bytes(jpeg_bytes((16, 16))[:-100])  # the header is whole
    return tmp_path / "data"


def test_fit_names_every_bad_training_image_at_once_and_stops(damaged, tmp_path, capsys):
    code, err = run_cli(capsys, fit(damaged))
    assert code == 2
    for name, reason in [
        ("baboon_3.JPEG", "empty file (0 bytes)"),
        ("bee_5.JPEG", "not an image file"),
        ("banana_1.JPEG", "cannot decode the pixel data"),
    ]:
        assert f"cannot read {damaged / 'train_set' / name.split('_')[0] / name}: {reason}" in err
    assert "vlc: error: 3 of 30 training and validation images cannot be read" in err  # header check + cache build
    assert "set data.bad_images: skip" in err
    assert not (tmp_path / "checkpoints").exists()


def test_fit_skips_bad_images_when_asked_up_to_a_ceiling(damaged, tmp_path, capsys):
    code, err = run_cli(capsys, fit(damaged, "--data.bad_images=skip", "--data.max_bad_fraction=0.05"))
    assert code == 2 and "3 of 30 training and validation images cannot be read" in err
    assert "10.0% of the images are bad, more than data.max_bad_fraction 0.05" in err
    code, err = run_cli(capsys, fit(damaged, "--data.bad_images=skip", "--data.max_bad_fraction=0.1"))
    assert code == 0
    assert "left out 3 of 30 training and validation images that cannot be read" in err
    (last,) = (tmp_path / "checkpoints" / "tinyimagenet30-cnn").glob("version_*/last.ckpt")
    assert torch.load(last, weights_only=False)["global_step"] > 0


def test_without_cache_damaged_pixels_are_found_in_the_first_epoch(damaged, tmp_path, capsys):
    (damaged / "train_set" / "baboon" / "baboon_3.JPEG").unlink()
    (damaged / "train_set" / "bee" / "bee_5.JPEG").unlink()
    truncated = damaged / "train_set" / "banana" / "banana_1.JPEG"
    dm = TinyImageNet30DataModule(root=str(damaged), cache=False)
    dm.setup("fit")
    split, total = ("training", 25) if truncated in dm.datasets["train"].paths else ("validation", 3)
    args = fit(damaged, "--data.cache=false", "--data.batch_size=5")  # 25 + 3 images: no training batch dropped
    code, err = run_cli(capsys, args)
    assert code == 2
    assert f"cannot read {truncated}: cannot decode the pixel data" in err
    assert f"vlc: error: 1 of {total} {split} images cannot be read ({truncated}: cannot decode" in err
    assert not list(tmp_path.glob("checkpoints/*/*/last.ckpt"))  # stopped before the epoch's checkpoint
    # batches of one image: the truncated one leaves an empty batch, a step with a zero loss
    code, err = run_cli(capsys, [*args, "--data.batch_size=1", "--data.bad_images=skip", "--data.max_bad_fraction=0.5"])
    assert code == 0 and f"left out 1 of {total} {split} images that cannot be read" in err
    assert list(tmp_path.glob("checkpoints/*/*/last.ckpt"))


def test_a_batch_with_no_readable_image_is_skipped_in_prediction(checkpoint, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg"):  # the first batch of two: neither decodes
        (folder / name).write_bytes(jpeg_bytes()[:-200])
    Image.new("RGB", (4, 4), (5, 5, 5)).save(folder / "c.png")
    out = tmp_path / "preds.csv"
    main(
        ["predict", "--config", str(CONFIGS / "predict" / "classify.yaml"), f"--ckpt_path={checkpoint}"]
        + [f"--data.predict_dir={folder}", "--data.image_size=16", "--data.batch_size=2", f"--writer.output={out}"]
    )
    with out.open() as f:
        assert [Path(row["file"]).name for row in csv.DictReader(f)] == ["c.png"]
    with (tmp_path / "preds.skipped.csv").open() as f:
        assert [Path(row["file"]).name for row in csv.DictReader(f)] == ["a.jpg", "b.jpg"]
