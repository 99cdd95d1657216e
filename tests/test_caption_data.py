"""Captioning data: the COCO captions data module on tiny COCO-format files made here, and the shapes one."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vlc.data.datasets.captions import collate_captions
from vlc.data.modules.captioning import draw_captions, split_by_image
from vlc.data.modules.coco_captions import CocoCaptionsDataModule
from vlc.data.modules.shapes import ShapesCaptionsDataModule
from vlc.errors import UserError
from vlc.vocabulary import Vocabulary

WORDS = ["dog", "cat", "bus", "tree", "boat", "kite", "pizza", "horse", "train", "clock"]


def write_coco(root: Path, n: int = 20, size: int = 24, extra_images=(), extra_annotations=()) -> tuple[Path, Path]:
    """``n`` images (PNG and JPEG) with 2-3 captions each in COCO format; returns (images_dir, captions_file)."""
    rng = np.random.default_rng(0)
    images_dir = root / "train2017"
    images_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(n):
        image_id = 1000 + i
        name = f"{image_id:012d}.{'png' if i % 2 else 'jpg'}"
        pixels = rng.integers(0, 255, (size + i % 3, size, 3), dtype=np.uint8)  # sizes differ, like COCO
        Image.fromarray(pixels).save(images_dir / name)
        images.append({"id": image_id, "file_name": name, "height": size, "width": size})
        word = WORDS[i % len(WORDS)]
        for j in range(2 + i % 2):
            annotations.append({"image_id": image_id, "id": 10 * i + j, "caption": f"A {word} number {j} here."})
    images += list(extra_images)
    annotations += list(extra_annotations)
    captions_file = root / "annotations" / "captions_train2017.json"
    captions_file.parent.mkdir(parents=True, exist_ok=True)
    captions_file.write_text(json.dumps({"info": {}, "licenses": [], "images": images, "annotations": annotations}))
    return images_dir, captions_file


def coco(images_dir, captions_file, **kwargs) -> CocoCaptionsDataModule:
    kwargs = {"image_size": 16, "batch_size": 4, "split": (0.6, 0.2, 0.2), **kwargs}
    return CocoCaptionsDataModule(str(images_dir), str(captions_file), **kwargs)


def test_split_by_image_is_seeded_and_disjoint():
    parts = split_by_image(50, (0.8, 0.1, 0.1), seed=3)
    assert [len(parts[s]) for s in ("train", "val", "test")] == [40, 5, 5]
    assert sorted(sum(parts.values(), [])) == list(range(50))
    assert parts == split_by_image(50, (0.8, 0.1, 0.1), seed=3) != split_by_image(50, (0.8, 0.1, 0.1), seed=4)


def test_coco_split_by_image_keeps_every_reference(tmp_path):
    dm = coco(*write_coco(tmp_path))
    dm.setup("fit")
    dm.setup("test")
    keys = {split: set(dm.datasets[split].keys) for split in ("train", "val", "test")}
    assert [len(keys[s]) for s in ("train", "val", "test")] == [12, 4, 4]
    assert not (keys["train"] & keys["val"]) and not (keys["train"] & keys["test"]) and not (keys["val"] & keys["test"])
    val = dm.datasets["val"]
    for key, refs in zip(val.keys, val.references):
        i = key - 1000
        assert len(refs) == 2 + i % 2 and refs[0] == f"A {WORDS[i % len(WORDS)]} number 0 here."
    batch = next(iter(dm.val_dataloader()))
    assert batch["images"].dtype == torch.uint8 and batch["images"].shape == (4, 3, 16, 16)
    assert batch["captions"].dtype == torch.long and batch["captions"][:, 0].eq(Vocabulary.START).all()
    assert len(batch["references"]) == 4 and batch["keys"].tolist() == sorted(val.keys)[:4]
    assert dm.vocabulary.decode(batch["captions"][0]) == dm.vocabulary.decode(
        dm.vocabulary.encode(batch["references"][0][0], 30)
    )


def test_vocabulary_comes_from_the_training_split_only(tmp_path):
    dm = coco(*write_coco(tmp_path), min_word_count=1)
    train_words = {w for i in dm.splits["train"] for ref in dm.index[1][i] for w in ref.lower().strip(".").split()}
    assert set(dm.vocabulary.words[4:]) == train_words
    assert dm.vocab == dm.vocabulary.to_dict()  # the linked attribute, available without setup()
    assert "<unk>" not in dm.vocab["words"][4:]


def test_training_draws_every_reference_and_evaluation_the_first(tmp_path):
    paths = write_coco(tmp_path, n=5)
    train, _ = coco(*paths, split=(1.0, 0.0, 0.0))._dataset("train")
    i = train.keys.index(1001)  # three captions
    batch = collate_captions([train[i], train[0]])
    assert batch["options"].shape[:2] == (2, 3) and batch["num_options"][0] == 3

    def draw(seed: int) -> tuple:
        return tuple(draw_captions(dict(batch), torch.Generator().manual_seed(seed))["captions"][0].tolist())

    assert len({draw(seed) for seed in range(60)}) == 3  # every reference is drawn
    assert draw(7) == draw(7)  # by the generator alone: a resumed run draws the same
    val, _ = coco(*paths, split=(0.2, 0.8, 0.0))._dataset("val")
    assert len(val[0][1]) == 1 and "options" not in collate_captions([val[0]])  # always the first reference


def test_collate_pads_with_pad_id():
    items = [
        (torch.zeros(3, 4, 4, dtype=torch.uint8), [torch.tensor([1, 5, 2])], ["x y"], 7),
        (
            torch.ones(3, 4, 4, dtype=torch.uint8),
            [torch.tensor([1, 5, 6, 7, 2]), torch.tensor([1, 8, 2])],
            ["z", "w"],
            9,
        ),
    ]
    batch = collate_captions(items)
    assert batch["captions"].tolist() == [[1, 5, 2, 0, 0], [1, 5, 6, 7, 2]]  # the first reference of each
    assert batch["options"].tolist() == [[[1, 5, 2, 0, 0], [0] * 5], [[1, 5, 6, 7, 2], [1, 8, 2, 0, 0]]]
    assert batch["num_options"].tolist() == [1, 2]
    assert batch["references"] == [["x y"], ["z", "w"]] and batch["keys"].tolist() == [7, 9]


def test_skips_are_counted_in_one_warning(tmp_path, capsys):
    extra_images = [
        {"id": 1, "file_name": "no_captions.jpg"},
        {"id": 2, "file_name": "missing_file.jpg"},
        {"id": 3},  # no file_name
    ]
    extra_annotations = [
        {"image_id": 2, "caption": "a picture that is not on disk"},
        {"image_id": 99999, "caption": "a caption of an unknown image"},
        {"image_id": 1000, "caption": "  ...  "},  # empty after tokenisation
        {"image_id": 1000},  # no caption
    ]
    images_dir, captions_file = write_coco(tmp_path, 10, extra_images=extra_images, extra_annotations=extra_annotations)
    (images_dir / "no_captions.jpg").write_bytes((images_dir / "000000001000.jpg").read_bytes())
    dm = coco(images_dir, captions_file)
    keys, references = dm.index
    assert keys == list(range(1000, 1010))
    assert all(len(refs) == 2 + i % 2 for i, refs in enumerate(references))  # the empty caption is gone
    err = capsys.readouterr().err
    assert err.count("vlc: warning:") == 1
    for part in (
        "1 images without captions (e.g. no_captions.jpg)",
        "1 images whose file is missing",
        "missing_file.jpg",
        "1 captions of an image id not in 'images' (e.g. 99999)",
        "1 captions empty or of punctuation only",
        "1 image entries without id or file_name",
        "1 annotations without image_id or caption",
    ):
        assert part in err, part


def test_subset_csv_and_max_images(tmp_path, capsys):
    images_dir, captions_file = write_coco(tmp_path)
    csv_path = tmp_path / "coco_subset_meta.csv"
    header = ",license,file_name,coco_url,height,width,date_captured,flickr_url,id"
    rows = [f"{k},1,{1000 + i:012d}.jpg,url,24,24,date,flickr,{1000 + i}" for k, i in enumerate([0, 2, 4, 6, 8, 10])]
    csv_path.write_text("\n".join([header, *rows, "6,1,gone.jpg,url,1,1,d,f,424242"]) + "\n")
    dm = coco(images_dir, captions_file, subset_csv=str(csv_path))
    assert dm.index[0] == [1000, 1002, 1004, 1006, 1008, 1010]
    assert "1 subset_csv rows not in captions_train2017.json (e.g. 424242)" in capsys.readouterr().err
    picked = coco(images_dir, captions_file, max_images=7, seed=1).index[0]
    assert len(picked) == 7 and picked == coco(images_dir, captions_file, max_images=7, seed=1).index[0]
    assert picked != coco(images_dir, captions_file, max_images=7, seed=2).index[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"images": [], "annotations": [', "not valid JSON"),
        ('{"images": []}', "no 'annotations' list"),
        ('{"annotations": []}', "no 'images' list"),
        ("[1, 2]", "expected a JSON object"),
        ('{"images": [], "annotations": []}', "no usable image with a caption"),
    ],
)
def test_bad_captions_files(tmp_path, content, message):
    images_dir, captions_file = write_coco(tmp_path, n=2)
    captions_file.write_text(content)
    with pytest.raises(UserError, match=message):
        coco(images_dir, captions_file).vocab  # noqa: B018


def test_missing_paths_and_bad_options(tmp_path):
    images_dir, captions_file = write_coco(tmp_path, n=4)
    with pytest.raises(UserError, match="does not exist"):
        coco(images_dir, tmp_path / "nope.json").vocab  # noqa: B018
    with pytest.raises(UserError, match="not a folder"):
        coco(tmp_path / "nowhere", captions_file).vocab  # noqa: B018
    with pytest.raises(UserError, match="add up to 1"):
        coco(images_dir, captions_file, split=(0.5, 0.1, 0.1))
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("a,b\n1,2\n")
    with pytest.raises(UserError, match="'id' or 'file_name' column"):
        coco(images_dir, captions_file, subset_csv=str(bad_csv)).vocab  # noqa: B018
    bad_csv.write_bytes(b"id\n\xff\xfe1\n")
    with pytest.raises(UserError, match="bad.csv is not a readable UTF-8 CSV"):
        coco(images_dir, captions_file, subset_csv=str(bad_csv)).vocab  # noqa: B018


def test_vocab_file_replaces_the_built_vocabulary(tmp_path):
    images_dir, captions_file = write_coco(tmp_path)
    path = tmp_path / "vocab.json"
    Vocabulary(["dog", "number"]).save(path)
    dm = coco(images_dir, captions_file, vocab_file=str(path))
    assert dm.vocab["words"] == ["<pad>", "<start>", "<end>", "<unk>", "dog", "number"]
    path.write_text("{not json")
    with pytest.raises(UserError, match="data.vocab_file: invalid vocabulary file"):
        coco(images_dir, captions_file, vocab_file=str(path)).vocab  # noqa: B018


def test_unreadable_image_stops_or_is_skipped(tmp_path):
    images_dir, captions_file = write_coco(tmp_path, n=5)
    (images_dir / "000000001000.jpg").write_bytes(b"not an image")
    dm = coco(images_dir, captions_file, split=(1.0, 0.0, 0.0))
    with pytest.raises(UserError, match=r"1 of 5 training images cannot be read \(.*000000001000.jpg: not an image"):
        dm.setup("fit")
    dm = coco(images_dir, captions_file, split=(1.0, 0.0, 0.0), bad_images="skip", max_bad_fraction=0.5)
    dm.setup("fit")
    assert 1000 not in dm.datasets["train"].keys and len(dm.datasets["train"]) == 4


def test_truncated_image_without_cache_is_left_out_of_its_batch(tmp_path):
    images_dir, captions_file = write_coco(tmp_path, n=5)
    data = (images_dir / "000000001002.jpg").read_bytes()
    (images_dir / "000000001002.jpg").write_bytes(data[:-200])  # the header passes, the pixels do not
    dm = coco(images_dir, captions_file, split=(1.0, 0.0, 0.0), cache=False, batch_size=5)
    dm.setup("fit")
    batch = dm.bad_images.take(next(iter(dm.train_dataloader())), None)
    assert len(batch["keys"]) == 4 and 1002 not in batch["keys"].tolist()
    assert [u.path.endswith("000000001002.jpg") for u in dm.bad_images.found] == [True]
    assert "cannot decode the pixel data" in dm.bad_images.found[0].reason
    with pytest.raises(UserError, match="1 of 5 training images cannot be read"):
        dm.bad_images.settle("training images", 5)  # without a trainer, a pass before training
    with pytest.raises(UserError, match="data.image_size: COCO images differ in size"):
        coco(images_dir, captions_file, image_size=None)


def test_image_cache_larger_than_memory_falls_back_to_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("vlc.data.image_cache.available_memory", lambda: 1000)
    dm = coco(*write_coco(tmp_path, n=5), split=(1.0, 0.0, 0.0))
    dm.setup("fit")
    assert "data.cache: the 5 training images at 16x16 need" in capsys.readouterr().err
    assert isinstance(dm.datasets["train"].images, list)
    assert dm.datasets["train"][0][0].shape == (3, 16, 16)


def test_shapes_captions_batches():
    dm = ShapesCaptionsDataModule(num_images=40, batch_size=8, split=(0.5, 0.25, 0.25))
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["images"].shape == (8, 3, 64, 64) and batch["images"].dtype == torch.uint8
    assert all(len(refs) == 3 for refs in batch["references"])
    words = set(dm.vocabulary.words)
    assert {"left", "right", "above", "below"} & words and {"small", "large"} <= words
    caption = dm.vocabulary.decode(batch["captions"][0])
    assert caption in batch["references"][0]
    assert " of a " in caption or " above a " in caption or " below a " in caption  # two shapes and a relation


def test_the_whitening_sample_of_a_captioning_set_skips_unreadable_images(tmp_path):
    """airbench's whitening stem is fitted to ``sample_images``: captioning items are tuples, not dicts."""
    images_dir, captions_file = write_coco(tmp_path, n=5)
    broken = images_dir / "000000001002.jpg"
    broken.write_bytes(broken.read_bytes()[:-200])  # the header passes, the pixels do not
    dm = coco(images_dir, captions_file, split=(1.0, 0.0, 0.0), cache=False)
    dm.setup("fit")
    sample = dm.sample_images(5)
    assert sample.shape == (4, 3, 16, 16) and sample.dtype == torch.uint8
    train = dm.datasets["train"]
    readable = [train[i][0] for i in range(5) if train.keys[i] != 1002]
    assert torch.equal(sample, torch.stack(readable))
