"""Every dataset format as a plain torch Dataset, read through a torch DataLoader with no Lightning at all."""

import pytest
import torch
from cifar_helpers import write_cifar_folders, write_cifar_pickles
from helpers import write_tinyimagenet30
from test_caption_data import write_coco
from torch.utils.data import DataLoader

from vlc.data import (
    Cifar10,
    Cifar10DataModule,
    CocoCaptions,
    Shapes,
    ShapesCaptions,
    ShapesDataModule,
    TinyImageNet30,
    TinyImageNet30DataModule,
)
from vlc.data.datasets.shapes import captions, sample_scene
from vlc.errors import UserError


def test_tinyimagenet30_train_and_test_sets(tmp_path):
    labels_csv = write_tinyimagenet30(tmp_path, per_class=4, test_per_class=2)
    train = TinyImageNet30(tmp_path)
    assert train.class_names == ["baboon", "banana", "bee"] and len(train) == 12
    batch = next(iter(DataLoader(train, batch_size=12)))
    assert batch["images"].shape == (12, 3, 16, 16) and batch["labels"].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    test = TinyImageNet30(tmp_path, split="test", test_labels=str(labels_csv))
    assert len(test) == 6 and [int(test[i]["labels"]) for i in range(6)] == [0, 0, 1, 1, 2, 2]
    module = TinyImageNet30DataModule(str(tmp_path), test_labels=str(labels_csv))
    assert [p.name for p in module.labelled("train")[0]] == [p.name for p in train.paths]  # one reader of the format
    with pytest.raises(UserError, match="split 'test' needs test_labels"):
        TinyImageNet30(tmp_path, split="test")


@pytest.mark.parametrize("layout", ["pickles", "folders"])
def test_cifar10_in_either_layout(tmp_path, layout):
    if layout == "pickles":
        write_cifar_pickles(tmp_path, per_class=2, test_per_class=1)
    else:
        write_cifar_folders(tmp_path, per_class=2, test_per_class=1)
    train, test = Cifar10(tmp_path, image_size=16), Cifar10(tmp_path, split="test")
    assert len(train) == 20 and len(test) == 10 and train.class_names[:2] == ["airplane", "automobile"]
    batch = next(iter(DataLoader(train, batch_size=20)))
    assert batch["images"].shape == (20, 3, 16, 16) and batch["images"].dtype == torch.uint8
    assert sorted(batch["labels"].tolist()) == sorted(Cifar10DataModule(str(tmp_path)).labelled("train")[1].tolist())
    assert test[0]["images"].shape == (3, 32, 32)


def test_coco_captions_keep_every_reference(tmp_path):
    images_dir, captions_file = write_coco(tmp_path, n=6)
    coco = CocoCaptions(images_dir, captions_file)
    assert len(coco) == 6 and len(coco.keys) == len(set(coco.keys))
    sample = coco[0]
    assert sample["images"].dtype == torch.uint8 and sample["keys"] == coco.keys[0]
    assert 2 <= len(sample["references"]) <= 3 and all(isinstance(r, str) for r in sample["references"])
    assert len(CocoCaptions(images_dir, captions_file, max_images=4)) == 4


def test_shapes_for_classification_and_captions():
    shapes = Shapes(num_images=8, start=30, image_size=32)
    sample = shapes[0]
    assert sample["images"].shape == (3, 32, 32) and int(sample["labels"]) == 0  # image 30: class 30 % 30
    module = ShapesDataModule(num_images=30, num_test=8, image_size=32)
    assert torch.equal(module.labelled("test")[0], shapes.images)  # the data module's test images
    scenes = ShapesCaptions(num_images=3)
    assert scenes[2]["references"] == captions(sample_scene(0, 2, 2)) and scenes[2]["images"].shape == (3, 64, 64)
