"""Classification data: splitting, decoding, augmentation, the shapes generator and the TinyImageNet30 layout."""

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import write_tinyimagenet30
from PIL import Image

from vlc.data import ShapesDataModule, TinyImageNet30DataModule
from vlc.data.augment import augment, random_crop
from vlc.data.bad_images import BadImages
from vlc.data.datasets.predict_folder import folder_images
from vlc.data.modules.classification import stratified_split
from vlc.errors import UserError
from vlc.images import ImageReader


def test_stratified_split_is_seeded_and_keeps_class_shares():
    labels = torch.arange(100) % 4
    train, val = stratified_split(labels, 0.2, seed=3)
    assert len(val) == 20 and set(train.tolist()).isdisjoint(val.tolist())
    assert torch.bincount(labels[val]).tolist() == [5, 5, 5, 5]
    assert torch.equal(val, stratified_split(labels, 0.2, seed=3)[1])
    assert not torch.equal(val, stratified_split(labels, 0.2, seed=4)[1])


def test_read_image_converts_every_mode_to_rgb(tmp_path):
    Image.new("L", (5, 4), 100).save(tmp_path / "grey.jpg")
    Image.new("RGBA", (5, 4), (10, 20, 30, 0)).save(tmp_path / "alpha.png")
    Image.new("P", (5, 4)).save(tmp_path / "palette.bmp")
    for name in ("grey.jpg", "alpha.png", "palette.bmp"):
        image = ImageReader()(tmp_path / name)
        assert image.shape == (3, 4, 5) and image.dtype == torch.uint8
    assert ImageReader(size=8)(tmp_path / "grey.jpg").shape == (3, 8, 8)


def test_folder_images_recursive_any_case_and_skips_broken(tmp_path, capsys):
    (tmp_path / "a" / "b").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(tmp_path / "x.PNG")
    Image.new("RGB", (4, 4)).save(tmp_path / "a" / "b" / "y.JpEg")
    Image.new("RGB", (4, 4)).save(tmp_path / "a" / "z.webp")
    (tmp_path / "a" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    (tmp_path / "notes.txt").write_text("text")
    bad = BadImages("predict")
    files = folder_images(tmp_path, ImageReader(), bad)
    assert sorted(f.name for f in files) == ["x.PNG", "y.JpEg", "z.webp"]
    reasons = [(Path(u.path).name, u.reason.split(" (")[0]) for u in bad.found]
    assert reasons == [("notes.txt", "not an image file name"), ("broken.jpg", "not an image file")]
    err = capsys.readouterr().err
    assert f"skipping {tmp_path / 'notes.txt'}: not an image file name" in err
    assert f"skipped 2 of 5 files under {tmp_path} that cannot be read (listed beside the predictions)" in err
    with pytest.raises(UserError, match="missing: no such file or folder"):
        folder_images(tmp_path / "missing", ImageReader(), bad)


def test_random_crop_shifts_content_and_flip_mirrors():
    torch.manual_seed(0)
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8).to(torch.uint8)
    cropped = random_crop(images, padding=2)
    assert cropped.shape == images.shape and cropped.dtype == torch.uint8
    assert not torch.equal(cropped, images) or not torch.equal(random_crop(images, 2), images)
    flipped = augment(images, "flip")
    for original, out in zip(images, flipped):
        assert torch.equal(out, original) or torch.equal(out, original.flip(-1))
    assert torch.equal(augment(images, "none"), images)


def test_shapes_data_is_deterministic_and_balanced():
    dm = ShapesDataModule(num_images=60, num_test=30, val_fraction=0.5)
    dm.setup("fit")
    again = ShapesDataModule(num_images=60, num_test=30, val_fraction=0.5)
    again.setup("fit")
    assert dm.num_classes == 30 and dm.class_names[0] == "red_circle"
    assert torch.equal(dm.datasets["train"].images, again.datasets["train"].images)
    labels = torch.as_tensor(dm.datasets["val"].targets)
    assert torch.bincount(labels, minlength=30).tolist() == [1] * 30
    sample = dm.datasets["train"][0]
    assert sample["images"].shape == (3, 64, 64) and sample["images"].dtype == torch.uint8 and "labels" in sample


@pytest.mark.parametrize("cache", [True, False])
def test_tinyimagenet30_reads_layout_greyscale_and_labels(tmp_path, cache):
    labels_csv = write_tinyimagenet30(tmp_path / "d", per_class=5, test_per_class=2)
    dm = TinyImageNet30DataModule(root=str(tmp_path / "d"), test_labels=str(labels_csv), cache=cache, val_fraction=0.2)
    assert dm.class_names == ["baboon", "banana", "bee"]
    dm.setup("fit")
    dm.setup("test")
    assert len(dm.datasets["train"]) == 12 and len(dm.datasets["val"]) == 3 and len(dm.datasets["test"]) == 6
    sample = dm.datasets["train"][0]
    assert sample["images"].shape == (3, 16, 16) and int(sample["labels"]) == 0  # the greyscale JPEG came back as RGB


def test_tinyimagenet30_labels_by_name_and_bad_category(tmp_path):
    write_tinyimagenet30(tmp_path / "d", per_class=2, test_per_class=1)
    csv = tmp_path / "names.csv"
    csv.write_text("Id,Category\ntest_0_0.JPEG,baboon\ntest_1_0.JPEG,1\ntest_2_0.JPEG,bee\n")
    dm = TinyImageNet30DataModule(root=str(tmp_path / "d"), test_labels=str(csv))
    dm.setup("test")
    assert torch.as_tensor(dm.datasets["test"].targets).tolist() == [0, 1, 2]
    csv.write_text("Id,Category\ntest_0_0.JPEG,zebra\n")
    with pytest.raises(UserError, match="line 2: unknown Category 'zebra'"):
        TinyImageNet30DataModule(root=str(tmp_path / "d"), test_labels=str(csv)).setup("test")
    csv.write_text("Id,Category\nnope.JPEG,0\n")
    with pytest.raises(UserError, match="'nope.JPEG' not found"):
        TinyImageNet30DataModule(root=str(tmp_path / "d"), test_labels=str(csv)).setup("test")


def test_corrupt_training_image_is_named(tmp_path):
    write_tinyimagenet30(tmp_path / "d", per_class=3)
    bad = tmp_path / "d" / "train_set" / "bee" / "bee_1.JPEG"
    bad.write_bytes(np.zeros(10, dtype=np.uint8).tobytes())
    dm = TinyImageNet30DataModule(root=str(tmp_path / "d"))
    with pytest.raises(UserError, match=r"1 of 9 training and validation images cannot be read \(.*bee_1.JPEG: not"):
        dm.setup("fit")


def test_image_cache_is_shared_by_train_and_val_and_falls_back_to_files_when_too_large(tmp_path, monkeypatch, capsys):
    write_tinyimagenet30(tmp_path / "d", per_class=10)
    dm = TinyImageNet30DataModule(root=str(tmp_path / "d"), image_size=16)
    dm.setup("fit")
    train, val = dm.datasets["train"], dm.datasets["val"]
    assert train.images.data_ptr() == val.images.data_ptr() and len(train.images) == 30  # one cache, no copies
    assert set(train.index).isdisjoint(val.index) and len(train) + len(val) == 30
    monkeypatch.setattr("vlc.data.image_cache.available_memory", lambda: 2 * 30 * 3 * 16 * 16 - 1)
    dm = TinyImageNet30DataModule(root=str(tmp_path / "d"), image_size=16)
    dm.setup("fit")
    assert "data.cache: the 30 training and validation images at 16x16 need 22.5 KiB" in capsys.readouterr().err
    assert isinstance(dm.datasets["train"].paths, list) and dm.datasets["train"][0]["images"].shape == (3, 16, 16)
