"""CIFAR-10: torchvision's pickled format and image folders, made in the test; download and layout errors."""

import os
import pickle
import shutil
from urllib.error import URLError

import numpy as np
import pytest
import torch
from cifar_helpers import write_cifar_folders, write_cifar_pickles

import vlc.data.datasets.cifar10 as cifar10
from vlc.data import Cifar10DataModule
from vlc.data.datasets.cifar10 import CIFAR10_CLASSES
from vlc.errors import UserError


def test_pickle_format_reads_images_labels_and_names(tmp_path):
    folder = write_cifar_pickles(tmp_path, per_class=4, test_per_class=2)
    dm = Cifar10DataModule(str(tmp_path), val_fraction=0.25)
    assert dm.class_names == list(CIFAR10_CLASSES) and dm.num_classes == 10
    images, labels = dm.labelled("train")
    assert images.shape == (40, 3, 32, 32) and images.dtype == torch.uint8
    assert torch.bincount(labels).tolist() == [4] * 10
    first = pickle.loads((folder / "data_batch_1").read_bytes())
    row = first[b"data"][0]  # 1024 red values, then green, then blue
    assert torch.equal(images[0], torch.from_numpy(row.reshape(3, 32, 32)))
    assert labels[0] == first[b"labels"][0]
    dm.setup("fit")
    dm.setup("test")
    assert len(dm.datasets["train"]) == 30 and len(dm.datasets["val"]) == 10 and len(dm.datasets["test"]) == 20


def test_train_fraction_keeps_a_stratified_share_of_training_and_the_same_validation(tmp_path):
    write_cifar_pickles(tmp_path, per_class=20)
    full, small = Cifar10DataModule(str(tmp_path)), Cifar10DataModule(str(tmp_path), train_fraction=0.2)
    for dm in (full, small):
        dm.setup("fit")
    assert torch.equal(small.datasets["val"].targets, full.datasets["val"].targets)  # 2 a class either way
    assert small.datasets["val"].index == full.datasets["val"].index
    train = small.datasets["train"]
    assert torch.bincount(train.targets).tolist() == [4] * 10  # 20% of each class's 18
    assert set(train.index) < set(full.datasets["train"].index)
    with pytest.raises(UserError, match="data.train_fraction must be above 0 and at most 1, got 0"):
        Cifar10DataModule(str(tmp_path), train_fraction=0)


def test_pickle_format_resizes_and_accepts_the_batches_folder_as_root(tmp_path):
    folder = write_cifar_pickles(tmp_path, per_class=2)
    dm = Cifar10DataModule(str(folder), image_size=64)
    images, _ = dm.labelled("test")
    assert images.shape == (10, 3, 64, 64) and images.dtype == torch.uint8


def test_image_folders(tmp_path):
    write_cifar_folders(tmp_path, per_class=3, test_per_class=2)
    dm = Cifar10DataModule(str(tmp_path), image_size=16, val_fraction=1 / 3)
    assert dm.class_names == list(CIFAR10_CLASSES)
    paths, labels = dm.labelled("train")
    assert len(paths) == 30 and all(p.parent.name == CIFAR10_CLASSES[c] for p, c in zip(paths, labels.tolist()))
    dm.setup("fit")
    dm.setup("test")
    images = next(iter(dm.test_dataloader()))["images"]
    assert images.shape[1:] == (3, 16, 16) and images.dtype == torch.uint8
    assert len(dm.datasets["train"]) == 20 and len(dm.datasets["val"]) == 10 and len(dm.datasets["test"]) == 20


def test_download_fetches_the_pickles_in_prepare_data(tmp_path, monkeypatch):
    def fake_download(url, download_root, filename=None, md5=None):
        assert url == cifar10.URL
        write_cifar_pickles(tmp_path / "new", per_class=1)

    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", fake_download)
    dm = Cifar10DataModule(str(tmp_path / "new"), download=True)
    assert dm.class_names == list(CIFAR10_CLASSES)  # known before the download, for linking into the model
    dm.prepare_data()
    assert dm.labelled("train")[0].shape == (10, 3, 32, 32)


def test_download_offline_says_where_to_put_the_files(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise URLError("no route to host")

    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", offline)
    dm = Cifar10DataModule(str(tmp_path / "cifar"), download=True)
    with pytest.raises(UserError, match="offline") as err:
        dm.prepare_data()
    assert str(tmp_path / "cifar") in str(err.value) and "cifar-10-batches-py" in str(err.value)
    assert "train/<class>" in str(err.value)


def test_missing_root_and_empty_root(tmp_path):
    with pytest.raises(UserError, match="is not a folder") as err:
        Cifar10DataModule(str(tmp_path / "nowhere"))
    assert "nowhere" in str(err.value)
    with pytest.raises(UserError, match="cifar-10-batches-py") as err:
        Cifar10DataModule(str(tmp_path))
    assert "train/<class>" in str(err.value) and "download" in str(err.value)


def test_label_folder_missing_from_train(tmp_path):
    write_cifar_folders(tmp_path, per_class=1)
    shutil.rmtree(tmp_path / "train" / "cat")
    with pytest.raises(UserError) as err:
        Cifar10DataModule(str(tmp_path))
    assert str(tmp_path / "train" / "cat") in str(err.value) and "missing" in str(err.value)


def test_class_mismatch_between_train_and_test(tmp_path):
    write_cifar_folders(tmp_path, per_class=1)
    os.rename(tmp_path / "test" / "truck", tmp_path / "test" / "lorry")
    with pytest.raises(UserError) as err:
        Cifar10DataModule(str(tmp_path))
    assert "lorry" in str(err.value)


def test_empty_class_folder(tmp_path):
    write_cifar_folders(tmp_path, per_class=1)
    for file in (tmp_path / "train" / "dog").iterdir():
        file.unlink()
    dm = Cifar10DataModule(str(tmp_path))
    with pytest.raises(UserError, match="no images") as err:
        dm.setup("fit")
    assert "dog" in str(err.value)


def test_corrupt_and_missing_pickles(tmp_path):
    folder = write_cifar_pickles(tmp_path, per_class=1)
    data = (folder / "data_batch_3").read_bytes()
    (folder / "data_batch_3").write_bytes(data[: len(data) // 2])
    dm = Cifar10DataModule(str(tmp_path))
    with pytest.raises(UserError, match="not a readable CIFAR pickle") as err:
        dm.setup("fit")
    assert "data_batch_3" in str(err.value)
    (folder / "data_batch_3").unlink()
    with pytest.raises(UserError, match="missing") as err:
        dm.setup("fit")
    assert "data_batch_3" in str(err.value)
    (folder / "batches.meta").write_bytes(b"garbage")
    with pytest.raises(UserError, match="batches.meta"):
        Cifar10DataModule(str(tmp_path))


def test_wrong_structure_and_code_in_pickles_are_refused(tmp_path):
    folder = write_cifar_pickles(tmp_path, per_class=1)
    with (folder / "test_batch").open("wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    dm = Cifar10DataModule(str(tmp_path))
    with pytest.raises(UserError, match="3072"):
        dm.setup("test")
    with (folder / "test_batch").open("wb") as f:
        pickle.dump({b"data": os.getcwd}, f)  # an object that is not an array: never imported nor called
    with pytest.raises(UserError, match="unexpected object"):
        dm.setup("test")


def test_resizing_more_than_memory_holds_is_refused_before_it_starts(tmp_path, monkeypatch):
    write_cifar_pickles(tmp_path)
    monkeypatch.setattr("vlc.data.image_cache.available_memory", lambda: 2 * 40 * 3 * 64 * 64 - 1)
    message = r"data.image_size: the 40 CIFAR-10 training images at 64x64 need 480.0 KiB, more than half of"
    with pytest.raises(UserError, match=message):
        Cifar10DataModule(root=str(tmp_path), image_size=64).setup("fit")
