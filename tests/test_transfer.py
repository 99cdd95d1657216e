"""Transfer from a TinyImageNet30 checkpoint to CIFAR-10 through the real CLI: loading, freezing, lr groups, errors."""

import os
from functools import partial
from types import SimpleNamespace

import pytest
import torch
from cifar_helpers import write_cifar_pickles
from helpers import CONFIGS, TINY_AIRBENCH, events, run_fails, write_tinyimagenet30

from vlc.cli import main
from vlc.models import ResidualCNN
from vlc.tasks.classifier import ImageClassifier
from vlc.tasks.optim import configure, param_groups

TIN_CKPT = "checkpoints/tinyimagenet30-airbench/version_0/last.ckpt"


def cifar_args(variant: str, root, *extra: str) -> list[str]:
    return [
        "fit",
        "--config",
        str(CONFIGS / "cifar10" / f"{variant}.yaml"),
        f"--data.root={root}",
        "--data.image_size=16",
        "--data.batch_size=8",
        "--data.val_fraction=0.25",
        "--trainer.max_epochs=1",
        "--trainer.max_time=null",
        "--trainer.log_every_n_steps=1",
        *TINY_AIRBENCH,
        *extra,
    ]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A TinyImageNet30 checkpoint trained for a few steps on tiny data, and tiny CIFAR-10 pickles."""
    work = tmp_path_factory.mktemp("transfer")
    write_tinyimagenet30(work / "tin", ("baboon", "banana", "bee"), per_class=6)
    write_cifar_pickles(work / "cifar", per_class=4)
    cwd = os.getcwd()
    os.chdir(work)
    try:
        tin = ["--config", str(CONFIGS / "tinyimagenet30" / "airbench.yaml"), f"--data.root={work / 'tin'}"]
        main(["fit", *tin, "--data.batch_size=6", "--trainer.max_epochs=1", "--trainer.max_time=null", *TINY_AIRBENCH])
        yield work
    finally:
        os.chdir(cwd)


def state(path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_frozen_features_stay_bit_identical(work, capsys):
    os.chdir(work)
    main(cifar_args("transfer_frozen", work / "cifar", "--model.init_args.freeze=all"))
    out = capsys.readouterr().out
    assert "loaded: " in out and "new (random init): 0" in out  # the head is not part of the backbone
    assert "shape mismatch (random init): 0" in out
    assert "trainable" in out and "frozen (freeze: all)" in out
    before, after = (
        state(TIN_CKPT),
        state(work / "checkpoints" / "cifar10" / "transfer_frozen" / "version_0" / "last.ckpt"),
    )
    features = [k for k in before if k.startswith("backbone.")]
    assert any("running_mean" in k for k in features)
    for key in features:  # weights and batch-norm statistics alike
        assert torch.equal(before[key], after[key]), key
    assert after["head.weight"].shape == (10, 16)
    run = events(work / "logs" / "cifar10" / "transfer_frozen")
    assert run.Scalars("params/trainable")[-1].value == 16 * 10 + 10  # the head alone


def test_partial_freeze_with_scaled_lr(work, capsys):
    os.chdir(work)
    frozen = "--model.init_args.freeze=[stem, group1]"
    args = cifar_args("transfer_full", work / "cifar", frozen, "--model.init_args.pretrained_lr_scale=0.5")
    main([*args, "--model.init_args.scheduler=null"])  # OneCycleLR cannot resume with more epochs
    before, after = (
        state(TIN_CKPT),
        state(work / "checkpoints" / "cifar10" / "transfer_full" / "version_0" / "last.ckpt"),
    )
    for key in before:
        if key.startswith(("backbone.body.stem.", "backbone.body.group1.")):
            assert torch.equal(before[key], after[key]), key  # frozen, batch-norm statistics included
    changed = [k for k in before if k.startswith("backbone.body.group2.") and not torch.equal(before[k], after[k])]
    assert "backbone.body.group2.conv2.weight" in changed and "backbone.body.group2.norm2.running_mean" in changed
    run = events(work / "logs" / "cifar10" / "transfer_full")
    assert run.Scalars("lr-SGD/head")[0].value == pytest.approx(1.5)  # the optimizer's lr in transfer_full.yaml
    assert run.Scalars("lr-SGD/pretrained")[0].value == pytest.approx(0.75)
    assert run.Scalars("lr-SGD/pretrained.norm_bias")[0].value == pytest.approx(0.75 * 64)

    # resuming restores the run's own weights: init_from is not read again (here it no longer exists)
    last = work / "checkpoints" / "cifar10" / "transfer_full" / "version_0" / "last.ckpt"
    steps = torch.load(last, weights_only=True)["global_step"]
    resume = ["--model.init_args.init_from=gone.ckpt", "--trainer.max_epochs=2", f"--ckpt_path={last}"]
    main([*args, "--model.init_args.scheduler=null", *resume])
    latest = max(last.parent.glob("last*.ckpt"), key=lambda p: p.stat().st_mtime)
    assert torch.load(latest, weights_only=True)["global_step"] == 2 * steps


def test_bad_init_from_and_freeze(work, capsys):
    os.chdir(work)
    cifar = work / "cifar"
    err = run_fails(capsys, cifar_args("transfer_full", cifar, "--model.init_args.init_from=nowhere.ckpt"))
    assert "model.init_from: nowhere.ckpt does not exist" in err
    torch.save({"state_dict": {"weight": torch.zeros(2)}}, work / "other.ckpt")
    err = run_fails(capsys, cifar_args("transfer_full", cifar, f"--model.init_args.init_from={work / 'other.ckpt'}"))
    assert "not a vlc classification checkpoint" in err and "other.ckpt" in err
    err = run_fails(capsys, cifar_args("transfer_full", cifar, "--model.init_args.freeze=[featurez.0]"))
    assert "'featurez.0' matches no layer of the backbone" in err and "stem, act, group1" in err
    err = run_fails(capsys, cifar_args("transfer_full", cifar, "--model.init_args.freeze=blocks:99"))
    assert "blocks:N" in err and "0..6" in err


def test_param_groups_split_the_head_from_the_backbone():
    model = ImageClassifier(backbone=partial(ResidualCNN, widths=[8, 32], stem_width=8), num_classes=10)
    model.backbone.freeze("blocks:2")
    groups = param_groups(model, 0.1)
    assert [g["name"] for g in groups] == ["head", "pretrained"] and groups[1]["lr_scale"] == 0.1
    assert groups[0]["params"] == [model.head.weight, model.head.bias]
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in model.parameters())


def test_one_cycle_max_lr_follows_the_lr_scale():
    model = ImageClassifier(backbone=partial(ResidualCNN, widths=[8, 16], stem_width=8), num_classes=10)
    module = SimpleNamespace(trainer=SimpleNamespace(estimated_stepping_batches=10, max_epochs=1, callbacks=[]))
    scheduler = partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=0.2, total_steps=None)
    out = configure(module, param_groups(model, 0.25), partial(torch.optim.SGD, lr=0.1), scheduler)
    groups = out["optimizer"].param_groups
    assert [g["max_lr"] for g in groups] == pytest.approx([0.2, 0.05])
    assert groups[1]["lr"] == pytest.approx(groups[0]["lr"] * 0.25)
    assert out["lr_scheduler"]["scheduler"].total_steps == 10
