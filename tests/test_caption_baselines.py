"""The baselines beside an evaluation, through the real CLI, on images whose nearest neighbours are known."""

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import tiny_captioner
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from vlc.cli import main
from vlc.data import CocoCaptionsDataModule
from vlc.metrics.baselines import constant_caption
from vlc.metrics.bleu import CorpusBLEU

COLOURS = {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}
CAPTIONS = {
    "red": ["a red square on a wall", "a red square", "a big red square on a wall"],
    "green": ["green grass in a field", "a field of green grass", "green grass"],
    "blue": ["the blue sky over the sea", "a blue sky", "blue sky over the sea"],
}


def write_colours(root: Path, n: int = 36) -> tuple[Path, Path]:
    """Plain images of three colours in COCO format; every image of a colour has that colour's three captions."""
    images_dir = root / "images"
    images_dir.mkdir(parents=True)
    images, annotations = [], []
    for i in range(n):
        colour = list(COLOURS)[i % 3]
        name = f"{i:04d}.png"
        Image.fromarray(np.full((16, 16, 3), COLOURS[colour], dtype=np.uint8)).save(images_dir / name)
        images.append({"id": i, "file_name": name})
        annotations += [{"image_id": i, "id": 10 * i + j, "caption": c} for j, c in enumerate(CAPTIONS[colour])]
    captions_file = root / "captions.json"
    captions_file.write_text(json.dumps({"images": images, "annotations": annotations}))
    return images_dir, captions_file


def test_validate_and_test_score_a_constant_and_a_nearest_neighbour_baseline(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    images_dir, captions_file = write_colours(tmp_path / "colours")
    args = [*tiny_captioner(images_dir, captions_file), "--data.batch_size=8", "--data.split=[0.5, 0.25, 0.25]"]
    main(["fit", *args, "--trainer.max_epochs=1"])
    main(["test", *args, "--ckpt_path=last"])
    (run,) = [p for p in (tmp_path / "logs").rglob("test") if p.is_dir()]
    acc = EventAccumulator(str(run))
    acc.Reload()
    score = {tag: acc.Scalars(tag)[0].value for tag in acc.Tags()["scalars"]}
    # A plain colour gives every image of that colour the same features: its nearest training images are of its
    # colour, so the consensus caption is one of its own references (BLEU-4 1); a constant caption fits a third.
    assert score["test/nearest_bleu_4"] == pytest.approx(1.0)
    assert score["test/nearest_distinct_captions"] == pytest.approx(3 / 9)  # 9 test images, one caption per colour
    assert score["test/constant_bleu_4"] < 0.6 and score["test/constant_distinct_captions"] == pytest.approx(1 / 9)
    # the constant caption, chosen on the training split, scored on the test split as the model's captions are
    data = CocoCaptionsDataModule(str(images_dir), str(captions_file), split=(0.5, 0.25, 0.25), min_word_count=1)
    data.setup("fit"), data.setup("test")
    bleu = CorpusBLEU(4)
    bleu.update([constant_caption(data.datasets["train"].references)] * 9, data.datasets["test"].references)
    assert score["test/constant_bleu_4"] == pytest.approx(float(bleu.compute()["bleu_4"]), abs=1e-6)
