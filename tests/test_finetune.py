"""Faithful captioning recipes: decoder first, then the encoder's last layers at their own learning rate; every
reference caption once per epoch."""

import logging
from collections import Counter

import torch
from helpers import tiny_captioner
from test_caption_data import coco, write_coco

from vlc.cli import main


def test_every_caption_gives_each_image_caption_pair_once_per_epoch(tmp_path):
    dm = coco(*write_coco(tmp_path), every_caption=True)
    dm.setup("fit")
    train = dm.datasets["train"]
    dm.batch_size = len(train)  # one batch: nothing dropped
    (batch,) = list(dm.train_dataloader())
    assert "options" not in batch  # no random draw: each item carries its own caption
    seen = Counter((key, dm.vocabulary.decode(ids)) for key, ids in zip(batch["keys"].tolist(), batch["captions"]))
    pairs = [(key, ref) for key, refs in zip(train.keys, train.references) for ref in refs]
    expected = Counter((key, ref.lower().rstrip(".")) for key, ref in pairs)
    assert seen == expected and len(train) == sum(len(refs) for refs in train.references) > len(train.keys)
    default = coco(*write_coco(tmp_path))
    default.setup("fit")
    assert len(default.datasets["train"]) == len(train.keys)  # by default an epoch is one pass over the images


def _fit(tmp_path, *extra):
    images_dir, captions_file = write_coco(tmp_path / "coco", n=16)
    main(
        [
            "fit",
            *tiny_captioner(images_dir, captions_file),
            "--model.freeze_encoder=blocks:1",  # the stem stays fixed; block 1 is fine-tuned
            "--model.finetune_from_epoch=1",
            "--model.pretrained_lr_scale=0.1",
            "--data.batch_size=4",
            "--data.num_workers=0",
            "--data.every_caption=true",
            *extra,
        ]
    )
    return torch.load(tmp_path / "checkpoints" / "coco-resnet50-lstm" / "version_0" / "last.ckpt", weights_only=False)


def test_encoder_fine_tuning_starts_at_its_epoch_with_its_own_learning_rate(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.INFO):
        first = _fit(tmp_path, "--trainer.max_epochs=1")
    assert "feature cache: 14 images" in caplog.text  # the whole encoder is frozen, hence cached, in epoch 0
    groups = first["optimizer_states"][0]["param_groups"]
    assert [g["name"] for g in groups] == ["head", "pretrained"]  # both groups exist from the first step
    assert groups[1]["lr"] == groups[0]["lr"] * 0.1
    encoder_ids = groups[1]["params"]
    assert encoder_ids and not set(encoder_ids) & set(first["optimizer_states"][0]["state"])  # no step yet
    # 12 training images with 2-3 captions each: an epoch is one pass over the 30 pairs, in full batches of 4
    assert first["global_step"] == 30 // 4

    caplog.clear()
    with caplog.at_level(logging.INFO):
        second = _fit(tmp_path, "--trainer.max_epochs=2", "--ckpt_path=last")
    assert "fine-tuning the encoder; its feature cache is dropped" in caplog.text
    stepped = set(second["optimizer_states"][0]["state"])
    assert set(encoder_ids) & stepped  # the released layers now train
    before, after = first["state_dict"], second["state_dict"]
    stem = [k for k in before if k.startswith("encoder.body.0.") and "weight" in k]
    block = [k for k in before if k.startswith("encoder.body.1.") and k.endswith("weight")]
    assert stem and all(torch.equal(before[k], after[k]) for k in stem)  # frozen: weights and batch-norm statistics
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("encoder.body.0.") and "running" in k)
    assert block and not any(torch.equal(before[k], after[k]) for k in block)
