"""The airbench recipe: its network and switches, alternating flips, test-time views, averaged weights in a real fit."""

from functools import partial
from types import SimpleNamespace

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from cifar_helpers import write_cifar_pickles
from helpers import CONFIGS, events, run_dirs

from vlc.checkpoint_upgrade import upgrade
from vlc.cli import main
from vlc.data import Cifar10DataModule
from vlc.data.augment import alternating_flips, augment
from vlc.models import AirbenchNet
from vlc.models.airbench import PatchWhitening
from vlc.tasks import ImageClassifier
from vlc.tasks.optim import configure, param_groups

AIRBENCH = partial(AirbenchNet, widths=[8, 16, 16], image_size=None)
SWITCHES_OFF = {"whiten": False, "identity_init": False, "bn_momentum": 0.1, "bn_eps": 1e-5, "bn_scale": True}


def smooth_images(n: int, size: int = 16) -> torch.Tensor:
    """uint8 images whose neighbouring pixels are correlated (upsampled blocks), with some noise."""
    generator = torch.Generator().manual_seed(0)
    blocks = torch.randint(0, 256, (n, 3, size // 4, size // 4), generator=generator).float()
    noise = torch.randn(n, 3, size, size, generator=generator) * 20
    return (F.interpolate(blocks, size=(size, size), mode="bilinear") + noise).clamp(0, 255).to(torch.uint8)


def test_the_whitening_stem_whitens_the_patches_it_was_fitted_on_and_stays_fixed():
    model = ImageClassifier(backbone=AIRBENCH, num_classes=3)
    backbone, images = model.backbone, smooth_images(64)
    stem = backbone.whitening
    assert isinstance(stem, PatchWhitening) and "whitening stem fitted" in backbone.init_from_data(images)
    out = F.conv2d(backbone.preprocess(images), stem.weight)  # (N, 24, 15, 15), without the bias
    out = out.transpose(0, 1).flatten(1)  # (24, N 15 15)
    moment = out @ out.T / out.shape[1]
    torch.testing.assert_close(moment[:12, :12], torch.eye(12), atol=0.01, rtol=0)
    torch.testing.assert_close(stem.weight[12:], -stem.weight[:12])  # each direction with both signs
    assert "body.stem.weight" in backbone.state_dict()  # checkpoints carry the fitted filters
    fixed = {"stem": stem.weight.clone(), "scale": backbone.body.group1.norm1.weight.clone()}
    optimizer = model.configure_optimizers()
    trained = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert id(stem.bias) in trained and not {id(t) for t in (stem.weight, backbone.body.group1.norm1.weight)} & trained
    loss = F.cross_entropy(model(images[:8]), torch.arange(8) % 3)
    loss.backward()
    optimizer.step()
    assert torch.equal(stem.weight, fixed["stem"]) and torch.equal(backbone.body.group1.norm1.weight, fixed["scale"])
    model.backbone.freeze("none")  # freezing choices never reach the buffers
    assert not any(p is stem.weight for p in model.parameters())


def test_a_stem_stride_of_2_whitens_the_non_overlapping_patches_and_halves_the_grid():
    def whitened_moment(filters: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x, filters[:12], stride=2).transpose(0, 1).flatten(1)  # (12, N 16 16)
        return out @ out.T / out.shape[1]

    strided, overlapping = AIRBENCH(stem_stride=2), AIRBENCH()
    images = smooth_images(64, size=32)
    for backbone in (strided, overlapping):
        backbone.init_from_data(images)
    x = strided.preprocess(images)
    torch.testing.assert_close(whitened_moment(strided.whitening.weight, x), torch.eye(12), atol=0.01, rtol=0)
    assert not torch.allclose(whitened_moment(overlapping.whitening.weight, x), torch.eye(12), atol=0.05)
    assert strided.whitening(x).shape == (64, 24, 16, 16)
    assert strided(smooth_images(2, size=64)).shape == (2, 16, 2, 2)  # 64 px: 32x32 after the stem, as at 32 px
    overlapping.load_state_dict(strided.state_dict())  # the same tensors: a 64 px checkpoint serves 32 px images


def test_identity_init_passes_the_input_through_the_first_channels_of_every_conv():
    def convs(identity_init: bool) -> list[torch.nn.Conv2d]:
        backbone = AIRBENCH(**{**SWITCHES_OFF, "identity_init": identity_init}, widths=[24, 32, 32])
        return [m for m in backbone.modules() if isinstance(m, torch.nn.Conv2d)][1:]  # after the 2x2 stem

    for identity, plain in zip(convs(True), convs(False)):
        x = torch.randn(2, identity.in_channels, 5, 5)
        torch.testing.assert_close(identity(x)[:, : identity.in_channels], x)
        assert not torch.allclose(plain(x)[:, : plain.in_channels], x)


def test_the_defaults_are_airbench94s_and_every_switch_off_is_the_plain_network():
    default = AirbenchNet()
    norm = default.body.group1.norm1
    widths = [m.out_channels for m in default.body.modules() if isinstance(m, torch.nn.Conv2d)]
    assert widths == [64, 64, 256, 256, 256, 256]  # two 3x3 convolutions a group
    assert default.whitening is not None and (norm.momentum, norm.eps) == (0.4, 1e-12) and "weight" in norm._buffers
    identity = default.body.group2.conv1
    torch.testing.assert_close(identity.weight[:64, :, 1, 1], torch.eye(64))  # identity-initialised
    plain = AIRBENCH(**SWITCHES_OFF)
    assert plain.whitening is None and type(plain.body.stem) is torch.nn.Conv2d and plain.body.stem.weight.requires_grad
    norm = plain.body.group1.norm1
    assert (norm.momentum, norm.eps, isinstance(norm.weight, torch.nn.Parameter)) == (0.1, 1e-5, True)
    assert plain.init_from_data(smooth_images(4)) is None
    switched = AIRBENCH()
    assert switched.state_dict().keys() == plain.state_dict().keys()  # one checkpoint layout either way
    assert plain(smooth_images(2)).shape == (2, 16, 1, 1)


def test_batch_norm_biases_train_faster_with_the_same_decay_per_step():
    model = ImageClassifier(backbone=AIRBENCH, num_classes=3)
    module = SimpleNamespace(trainer=SimpleNamespace(estimated_stepping_batches=10, max_epochs=1, callbacks=[]))
    scheduler = partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=1.5, total_steps=None)
    optimizer = partial(torch.optim.SGD, lr=1.5, weight_decay=1e-3)
    out = configure(module, param_groups(model, 1.0, "backbone", 64.0), optimizer, scheduler)
    groups = out["optimizer"].param_groups
    assert [g["name"] for g in groups] == ["other", "norm_bias"]
    assert [g["max_lr"] for g in groups] == pytest.approx([1.5, 96.0])
    assert [g["max_lr"] * g["weight_decay"] for g in groups] == pytest.approx([1.5e-3, 1.5e-3])
    biases = {id(m.bias) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert {id(p) for p in groups[1]["params"]} == biases


def test_alternating_flips_flip_every_image_on_alternate_epochs_whatever_came_before():
    index = torch.arange(2000)
    first, second, third = (alternating_flips(index, epoch, seed=7) for epoch in (4, 5, 6))
    assert (first != second).all() and torch.equal(first, third)
    assert 0.45 < first.float().mean() < 0.55  # a random half
    assert not torch.equal(first, alternating_flips(index, 4, seed=8))  # seeded
    assert torch.equal(alternating_flips(index[[5, 1]], 4, seed=7), first[[5, 1]])  # per image, in any batch


def test_the_data_module_flips_by_epoch_and_index_and_keeps_its_random_flips(tmp_path):
    write_cifar_pickles(tmp_path, per_class=1)
    images = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    batch = {"images": images, "labels": torch.zeros(6), "index": torch.tensor([3, 1, 4, 5, 9, 2])}

    def flipped(flip: str, epoch: int, seed: int = 0) -> torch.Tensor:
        data = Cifar10DataModule(str(tmp_path), augment="flip", flip=flip)
        data.trainer = SimpleNamespace(current_epoch=epoch)  # a resumed run: a new data module at that epoch
        out = data.train_batch(batch, torch.Generator().manual_seed(seed))["images"]
        return (out != images).flatten(1).any(1)

    assert (flipped("alternating", 2) != flipped("alternating", 3)).all()
    assert torch.equal(flipped("alternating", 2), flipped("alternating", 2, seed=1))  # no draw from the generator
    expected = augment(images, "flip", torch.Generator().manual_seed(5))
    assert torch.equal(flipped("random", 2, seed=5), (expected != images).flatten(1).any(1))


def test_test_time_views_are_airbench_weighted_flips_and_one_pixel_shifts():
    model = ImageClassifier(backbone=partial(AIRBENCH, **SWITCHES_OFF), num_classes=3).eval()
    x = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    down_right = [1, *range(15)]  # pixel i shows i - 1; the border reflects
    up_left = [*range(1, 16), 14]
    shifted = [x[:, :, rows][..., rows] for rows in (down_right, up_left)]
    with torch.no_grad():
        plain = model.logits(x)
        mirrored = model.logits(x.flip(-1))
        moved = [model.logits(s) for s in shifted]
        moved_mirrored = [model.logits(s.flip(-1)) for s in shifted]
        torch.testing.assert_close(model(x), plain)
        model.hparams.flip_average = True
        assert torch.equal(model(x), (plain + mirrored) / 2)  # the flip average of earlier versions, exactly
        model.hparams.translate_average = True
        expected = (plain + mirrored) / 4 + (sum(moved) + sum(moved_mirrored)) / 8
        torch.testing.assert_close(model(x), expected)
        model.hparams.flip_average = False
        torch.testing.assert_close(model(x), plain / 2 + sum(moved) / 4)


def test_averaged_weights_are_validated_checkpointed_and_evaluated(tmp_path, capsys, monkeypatch):
    """A real short fit with EMAWeightAveraging: the checkpoint's weights are the averaged ones, as validated."""
    write_cifar_pickles(tmp_path / "cifar", per_class=4)
    monkeypatch.chdir(tmp_path)
    args = ["--config", str(CONFIGS / "cifar10" / "airbench.yaml"), f"--data.root={tmp_path / 'cifar'}"]
    args += ["--model.backbone.widths=[8, 16, 16]", "--data.batch_size=8", "--data.val_fraction=0.25"]
    args += ["--trainer.max_time=null"]
    args += ["--trainer.precision=32-true", "--trainer.enable_progress_bar=false"]
    ema = ["--trainer.callbacks+=lightning.pytorch.callbacks.EMAWeightAveraging", "--trainer.callbacks.decay=0.9"]
    main(["fit", *args, *ema, "--trainer.max_epochs=1"])
    assert "whitening stem fitted to the 2x2 patches of 30 training images" in capsys.readouterr().out
    checkpoint = torch.load(next(tmp_path.rglob("last.ckpt")), weights_only=False)
    averaged, trained = checkpoint["state_dict"], checkpoint["current_model_state"]
    assert not torch.equal(averaged["backbone.body.group1.conv1.weight"], trained["backbone.body.group1.conv1.weight"])
    torch.testing.assert_close(averaged["backbone.body.stem.weight"], trained["backbone.body.stem.weight"])  # fixed
    (run,) = run_dirs(tmp_path / "logs")
    logged = {tag: events(run).Scalars(tag)[-1].value for tag in ("val/acc", "val/loss")}
    main(["validate", *args, "--ckpt_path=last"])
    validated = events(run / "validate")
    assert {tag: validated.Scalars(tag)[-1].value for tag in logged} == pytest.approx(logged, abs=1e-6)


STEM_BIASES: list[torch.Tensor] = []
"""What :class:`StemBias` recorded: the whitening stem's bias and a 3x3 filter at the end of each training epoch."""


class StemBias(L.Callback):
    """Records the stem's bias and the first conv's weights after each training epoch (in ``STEM_BIASES``)."""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        body = pl_module.backbone.body
        STEM_BIASES.append((body.stem.bias.detach().clone(), body.group1.conv1.weight.detach().clone()))


@pytest.mark.parametrize(("epochs", "rests"), [(1, True), (2, False)])
def test_the_whitening_bias_trains_for_its_epochs_then_rests_as_the_rest_trains(tmp_path, monkeypatch, epochs, rests):
    write_cifar_pickles(tmp_path / "cifar", per_class=4)
    monkeypatch.chdir(tmp_path)
    STEM_BIASES.clear()
    args = ["fit", "--config", str(CONFIGS / "cifar10" / "airbench.yaml"), f"--data.root={tmp_path / 'cifar'}"]
    args += ["--model.backbone.widths=[8, 16, 16]", "--data.batch_size=8", "--data.val_fraction=0.25"]
    args += ["--trainer.max_time=null", "--trainer.max_epochs=2", "--trainer.precision=32-true"]
    args += ["--trainer.enable_progress_bar=false", f"--model.backbone.whiten_bias_epochs={epochs}"]
    alone = ["--trainer.callbacks=[]", "--trainer.callbacks+=test_airbench.StemBias"]  # Lookahead would move it too
    main([*args, *alone])
    (bias_0, conv_0), (bias_1, conv_1) = STEM_BIASES
    assert bias_0.abs().sum() > 0  # trained in the first epoch (it starts at zero)
    assert torch.equal(bias_0, bias_1) is rests  # the second epoch leaves it, update and weight decay alike
    assert not torch.equal(conv_0, conv_1)  # while the network trains on
    saved = torch.load(next(tmp_path.rglob("last.ckpt")), weights_only=False)
    assert saved["hyper_parameters"]["backbone"]["init_args"]["whiten_bias_epochs"] == epochs


def test_an_airbench_checkpoint_from_before_the_bias_epochs_keeps_training_its_bias():
    """Checkpoints written before ``whiten_bias_epochs`` trained the bias throughout; they resume that way."""
    hparams = {"num_classes": 10, "backbone": {"class_path": "vlc.models.AirbenchNet", "init_args": {"widths": [8]}}}
    upgraded = upgrade({"hyper_parameters": hparams, "state_dict": {}})["hyper_parameters"]
    assert upgraded["backbone"]["init_args"] == {"widths": [8], "whiten_bias_epochs": None}
    current = {"class_path": "vlc.models.AirbenchNet", "init_args": {"whiten_bias_epochs": 3}}
    assert upgrade({"hyper_parameters": {"num_classes": 2, "backbone": current}})["hyper_parameters"]["backbone"] == {
        "class_path": "vlc.models.AirbenchNet",
        "init_args": {"whiten_bias_epochs": 3},
    }
