"""Image shards (``vlc data optimize``, ``data.shards``), offline: the network is blocked in every test and subprocess
(the loopback interface stays open: DDP's processes meet on it).

A fit on shards is the fit on the source (the same split, the same batches, bit-identical weights), survives SIGKILL
and resumes exactly, and meets a damaged image in the shards as it meets the damaged file.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import no_network
import pytest
import torch
from cifar_helpers import write_cifar_pickles
from helpers import (
    CONFIGS,
    FAST_PRECISION,
    REPO,
    TINY_NET,
    run_cli,
    run_fails,
    tiny_classifier_fit,
    write_tinyimagenet30,
)
from test_caption_data import write_coco
from test_resume import curves, fault

from vlc.data import Cifar10DataModule, CocoCaptionsDataModule, TinyImageNet30DataModule
from vlc.data.bad_images import read_or_unreadable
from vlc.data.datasets.shapes import shapes_samples
from vlc.data.datasets.shards import INDEX, Shards
from vlc.images import ImageReader

TESTS = Path(__file__).resolve().parent
CLASSIFY = [
    "--config",
    str(CONFIGS / "demo" / "classify.yaml"),
    "--data.init_args.num_images=480",  # 384 training images: 12 steps an epoch
    "--data.init_args.num_test=40",
]
FIT = [
    "fit",
    *CLASSIFY,
    "--data.init_args.batch_size=32",
    "--data.init_args.augment=crop_flip",
    "--model.init_args.dropout=0.2",
    "--trainer.max_epochs=2",
    "--trainer.log_every_n_steps=1",
    "--trainer.enable_progress_bar=false",
    f"--trainer.precision={FAST_PRECISION}",
    *TINY_NET,
]
RUN = Path("logs") / "demo-classify" / "version_0"
LAST = Path("checkpoints") / "demo-classify" / "version_0" / "last.ckpt"
OFFLINE_VLC = "import no_network, runpy, socket; no_network.block(); runpy.run_module('vlc', run_name='__main__')"


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    no_network.block(monkeypatch)
    with pytest.raises(no_network.NetworkUsed):  # the block is on
        socket.create_connection(("203.0.113.9", 80), timeout=1)  # an address of TEST-NET-3


def vlc(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``vlc ARGS`` in a fresh process in ``cwd`` without network (this checkout and the tests folder importable)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(TESTS)]), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", OFFLINE_VLC, *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def optimize(capsys, out: Path, *args: str) -> dict:
    """``vlc data optimize ARGS --out OUT`` in this process; the index it wrote."""
    code, err = run_cli(capsys, ["data", "optimize", *args, "--out", str(out)])
    assert code == 0, err
    return json.loads((out / INDEX).read_text())


def same_weights(a: Path, b: Path) -> bool:
    ours, theirs = (torch.load(p, weights_only=True)["state_dict"] for p in (a, b))
    return ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in theirs)


@pytest.mark.slow
def test_a_fit_on_shards_killed_and_resumed_is_the_uninterrupted_fit_on_the_source(tmp_path, capsys):
    index = optimize(capsys, tmp_path / "shards", *CLASSIFY)
    assert index["task"] == "classification" and index["splits"]["train"]["count"] == 480
    assert index["splits"]["test"]["count"] == 40 and len(index["class_names"]) == 30
    blocked = subprocess.run(  # what vlc() runs first, in its subprocess
        [
            sys.executable,
            "-c",
            OFFLINE_VLC.split(" runpy.run_module")[0] + " socket.create_connection(('203.0.113.9', 80))",
        ],
        env={**os.environ, "PYTHONPATH": str(TESTS)},
        capture_output=True,
        text=True,
    )
    assert "NetworkUsed: network used in a test that must run offline" in blocked.stderr
    shards = f"--data.init_args.shards={tmp_path / 'shards'}"
    (tmp_path / "source").mkdir()
    (tmp_path / "killed").mkdir()
    reference = vlc(tmp_path / "source", *FIT)  # in memory, never interrupted
    assert reference.returncode == 0, reference.stderr[-2000:]
    killed = vlc(tmp_path / "killed", *FIT, shards, *fault(17, "SIGKILL"))
    assert killed.returncode == -9
    assert torch.load(tmp_path / "killed" / LAST, weights_only=True)["global_step"] == 12  # the end of epoch 0
    resumed = vlc(tmp_path / "killed", *FIT, shards, "--ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert torch.load(tmp_path / "killed" / LAST, weights_only=True)["global_step"] == 24
    ref, got = curves(tmp_path / "source" / RUN), curves(tmp_path / "killed" / RUN)
    for tag in ("val/acc", "val/loss", "train/loss_step", "train/loss_epoch"):
        assert got[tag] == ref[tag], tag  # identical values at the same steps, none duplicated
    assert same_weights(tmp_path / "killed" / LAST, tmp_path / "source" / LAST)


def test_shards_of_a_folder_read_its_files_and_meet_its_damaged_images_as_the_files_path_does(
    tmp_path, monkeypatch, capsys
):
    root = tmp_path / "tin"
    write_tinyimagenet30(root, per_class=8)
    header, pixels = root / "train_set" / "bee" / "bee_3.JPEG", root / "train_set" / "banana" / "banana_2.JPEG"
    header.write_text("<html>a web page saved as .JPEG</html>")  # the header check finds it
    pixels.write_bytes(pixels.read_bytes()[:-60])  # its pixel data cut short: found when decoded
    config = ["--config", str(CONFIGS / "tinyimagenet30" / "cnn.yaml"), f"--data.root={root}"]
    index = optimize(capsys, tmp_path / "shards", *config, "--data.test_labels", str(root / "test_labels.csv"))
    assert index["class_names"] == ["baboon", "banana", "bee"] and index["splits"]["test"]["count"] == 6
    first = Shards(tmp_path / "shards")[0]["images"]  # the greyscale JPEG, as vlc's reader reads the file
    assert torch.equal(first, ImageReader()(root / "train_set" / "baboon" / "baboon_0.JPEG"))

    monkeypatch.chdir(tmp_path)
    shards = f"--data.shards={tmp_path / 'shards'}"
    reasons = {path: read_or_unreadable(ImageReader(), path).reason for path in (header, pixels)}  # vlc's reader's
    assert "cannot decode the pixel data" in reasons[pixels] and "not an image file" in reasons[header]
    named = {path: f"{tmp_path / 'shards'}/train/{path.parent.name}/{path.name}: {reasons[path]}" for path in reasons}
    err = run_fails(capsys, tiny_classifier_fit(root, shards))  # data.bad_images: stop, before training
    assert f"1 of 24 training and validation images cannot be read ({named[header]})" in err
    skip = ["--data.bad_images=skip", "--data.max_bad_fraction=0.1", "--data.cache=false"]
    code, err = run_cli(capsys, tiny_classifier_fit(root, *skip, "--trainer.logger.init_args.name=files"))
    assert code == 0, err
    code, err = run_cli(capsys, tiny_classifier_fit(root, *skip, shards, "--trainer.logger.init_args.name=shards"))
    assert code == 0, err
    assert named[header] in err and named[pixels] in err and "left out 1 of" in err
    files, streamed = (curves(tmp_path / "logs" / name / "version_0") for name in ("files", "shards"))
    assert streamed["val/acc"] == files["val/acc"] and streamed["train/loss_epoch"] == files["train/loss_epoch"]
    data = TinyImageNet30DataModule(root="elsewhere", shards=str(tmp_path / "shards"))  # root is not read
    data.check_test_set()  # the shards hold the test set: no --data.test_labels needed
    data.setup("test")
    assert data.datasets["test"].targets.tolist() == [0, 0, 1, 1, 2, 2]  # test_labels.csv's, in test_set/'s order


@pytest.mark.slow
def test_a_captioner_trains_on_shards_as_on_its_source(tmp_path, monkeypatch, capsys):
    caption = [
        "--config",
        str(CONFIGS / "demo" / "caption.yaml"),
        "--data.num_images=60",
    ]
    index = optimize(capsys, tmp_path / "shards", *caption)
    assert index["task"] == "captioning" and index["splits"]["images"]["count"] == 60
    monkeypatch.chdir(tmp_path)
    fit = [
        "fit",
        *caption,
        "--model.encoder.widths=[8, 16]",
        "--model.encoder.stem_width=8",
        "--model.decoder.hidden_dim=16",
        "--model.decoder.embed_dim=8",
        "--model.decoder.attention_dim=8",
        "--data.batch_size=16",
        "--trainer.max_epochs=1",
        "--trainer.limit_val_batches=0",  # the training batches are compared; the splits' items in the COCO test
        "--trainer.enable_progress_bar=false",
        "--trainer.precision=32-true",
    ]
    assert run_cli(capsys, [*fit, "--trainer.logger.init_args.name=source"])[0] == 0
    streamed = ["--trainer.logger.init_args.name=shards", f"--data.shards={tmp_path / 'shards'}"]
    # a loader worker process reads the shards itself: the batches are the same
    assert run_cli(capsys, [*fit, *streamed, "--data.num_workers=1"])[0] == 0
    last = [tmp_path / "checkpoints" / name / "version_0" / "last.ckpt" for name in ("source", "shards")]
    assert same_weights(*last)
    vocabularies = [torch.load(p, weights_only=False)["hyper_parameters"]["vocab"] for p in last]
    assert vocabularies[0] == vocabularies[1]


def test_the_plain_dataset_gives_the_source_images_and_labels(tmp_path, capsys):
    optimize(capsys, tmp_path / "shards", *CLASSIFY, "--data.init_args.num_images=50", "--chunk-bytes=64kb")
    assert len(list((tmp_path / "shards" / "train").glob("chunk-*.bin"))) > 1  # items are read across chunks
    images, labels = shapes_samples(0, 50)
    dataset = Shards(tmp_path / "shards")
    assert len(dataset) == 50 and dataset.class_names[0] == "red_circle"
    for i in (0, 17, 49):
        assert torch.equal(dataset[i]["images"], images[i]) and dataset[i]["labels"] == labels[i]


def test_mistakes_with_shards_are_one_line(tmp_path, monkeypatch, capsys):
    err = run_fails(capsys, [*FIT, f"--data.init_args.shards={tmp_path}"])
    assert f"data.shards: {tmp_path} has no {INDEX}; expected a folder written by vlc data optimize" in err
    optimize(capsys, tmp_path / "captions", "--config", str(CONFIGS / "demo" / "caption.yaml"), "--data.num_images=20")
    err = run_fails(capsys, [*FIT, f"--data.init_args.shards={tmp_path / 'captions'}"])
    assert "holds captioning data; this data module needs classification data" in err
    err = run_fails(capsys, ["data", "optimize", *CLASSIFY, "--out", str(tmp_path / "captions")])
    assert f"--out {tmp_path / 'captions'} exists and is not empty" in err
    predict = ["--config", str(CONFIGS / "predict" / "classify.yaml"), f"--data.predict_dir={tmp_path}"]
    err = run_fails(capsys, ["data", "optimize", *predict, "--out", str(tmp_path / "new")])
    assert "vlc data optimize writes classification or captioning data, not ImageFolderDataModule" in err
    monkeypatch.setitem(sys.modules, "litdata", None)  # not installed
    err = run_fails(capsys, ["data", "optimize", *CLASSIFY, "--out", str(tmp_path / "new")])
    assert err.strip().endswith("need litdata: pip install 'vlc[stream]'") and len(err.strip().splitlines()) == 1
    monkeypatch.chdir(tmp_path)
    err = run_fails(capsys, [*FIT, f"--data.init_args.shards={tmp_path / 'captions'}"])
    assert err.strip().endswith("need litdata: pip install 'vlc[stream]'") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "logs").exists()  # before a run folder


def test_cifar10_batches_without_a_config_read_back_as_from_the_source(tmp_path, capsys):
    write_cifar_pickles(tmp_path / "cifar", per_class=3)
    source = ["--data=vlc.data.Cifar10DataModule", f"--data.root={tmp_path / 'cifar'}"]
    index = optimize(capsys, tmp_path / "shards", *source)
    assert index["class_names"][:2] == ["airplane", "automobile"] and index["splits"]["test"]["count"] == 10
    streamed = Cifar10DataModule(root="elsewhere", shards=str(tmp_path / "shards"), val_fraction=0.34)
    cached = Cifar10DataModule(root=str(tmp_path / "cifar"), val_fraction=0.34)
    for data in (streamed, cached):
        data.setup("fit")
        data.setup("test")
    assert streamed.class_names == cached.class_names
    for split in ("train", "val", "test"):
        ours, theirs = streamed.datasets[split], cached.datasets[split]
        assert len(ours) == len(theirs) > 0
        for i in range(len(ours)):
            assert torch.equal(ours[i]["images"], theirs[i]["images"]) and ours[i]["labels"] == theirs[i]["labels"]


def test_coco_captions_read_back_as_from_the_source(tmp_path, capsys):
    images_dir, captions_file = write_coco(tmp_path / "coco", n=10)
    source = ["--data.images_dir", str(images_dir), "--data.captions_file", str(captions_file), "--data.image_size=16"]
    optimize(capsys, tmp_path / "shards", "--config", str(CONFIGS / "coco" / "resnet50_lstm.yaml"), *source)
    options = {"image_size": 16, "split": (0.6, 0.2, 0.2), "cache": False}
    streamed = CocoCaptionsDataModule("elsewhere", "missing.json", shards=str(tmp_path / "shards"), **options)
    files = CocoCaptionsDataModule(str(images_dir), str(captions_file), **options)
    assert streamed.vocab == files.vocab
    for data in (streamed, files):
        data.setup("fit")
    for split in ("train", "val"):
        ours, theirs = streamed.datasets[split], files.datasets[split]
        assert ours.keys == theirs.keys and ours.references == theirs.references and len(ours) > 0
        assert all(torch.equal(ours.image(i), theirs.image(i)) for i in range(len(ours)))


@pytest.mark.slow
def test_ddp_on_shards_is_ddp_on_the_files(tmp_path, monkeypatch, capsys):
    write_tinyimagenet30(tmp_path / "data", per_class=7)  # 21 images, 15 for training: the sampler pads one rank
    config = ["--config", str(CONFIGS / "tinyimagenet30" / "cnn.yaml"), f"--data.root={tmp_path / 'data'}"]
    optimize(capsys, tmp_path / "shards", *config)
    monkeypatch.chdir(tmp_path)
    ddp = ["--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp_fork"]  # forks keep the block
    fit = tiny_classifier_fit(tmp_path / "data", "--data.cache=false", "--data.batch_size=4", *ddp)
    assert run_cli(capsys, [*fit, "--trainer.logger.init_args.name=files"])[0] == 0
    streamed = ["--trainer.logger.init_args.name=shards", f"--data.shards={tmp_path / 'shards'}"]
    code, err = run_cli(capsys, [*fit, *streamed])
    assert code == 0, err
    last = [tmp_path / "checkpoints" / name / "version_0" / "last.ckpt" for name in ("files", "shards")]
    assert torch.load(last[1], weights_only=True)["global_step"] == 2  # 8 of 15 images a process, batches of 4
    assert same_weights(*last)
