"""ImageBackbone and its families: one preprocessing, torchvision bodies and weights, init_from, freezing."""

import functools
import shutil
import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision

from vlc.errors import UserError
from vlc.models import ImageBackbone, ResidualCNN, TorchvisionBackbone
from vlc.tasks.classifier import ImageClassifier

TINY = functools.partial(ResidualCNN, widths=[8, 16], stem_width=8, image_size=32)
LEGACY = Path(__file__).resolve().parent / "legacy"


def images(n: int, size: int = 32) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def test_cnn_grid_resizes_and_normalises():
    backbone = TINY()
    grid = backbone(images(2, size=48))  # resized to 32 first
    assert grid.shape == (2, 16, 8, 8) and backbone.num_features == 16
    assert set(backbone.state_dict()) >= {"mean", "std"}  # the preprocessing travels in the checkpoint
    same = TINY(image_size=None)
    same.load_state_dict(backbone.state_dict())
    resized = torch.nn.functional.interpolate(images(2, 48).float(), size=(32, 32), mode="bilinear", antialias=True)
    torch.testing.assert_close(same(resized), grid)  # the one resize: bilinear, antialiased


def test_any_body_is_a_backbone_with_the_shared_preprocessing_and_nothing_to_load():
    backbone = ImageBackbone(torch.nn.Conv2d(3, 4, 3), num_features=4, image_size=16, channels_last=False)
    assert backbone(images(2, size=32)).shape == (2, 4, 14, 14)  # resized to 16 first
    assert set(backbone.state_dict()) == {"body.weight", "body.bias", "mean", "std"}
    assert (
        backbone.load_pretrained() is None and backbone.whitening is None and backbone.init_from_data(images(2)) is None
    )


@pytest.mark.parametrize(
    ("name", "size", "channels", "side"), [("resnet18", 64, 512, 2), ("inception_v3", 75, 2048, 1)]
)
def test_torchvision_bodies_are_cut_before_pooling(name, size, channels, side):
    backbone = TorchvisionBackbone(name, image_size=size)
    assert backbone.num_features == channels and backbone.training
    assert backbone.eval()(images(1, size)).shape == (1, channels, side, side)
    if name == "inception_v3":
        assert torch.allclose(backbone.mean, torch.full_like(backbone.mean, 127.5))  # its weights expect [-1, 1]


def test_offline_weights_fail_fast_with_a_clear_message(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", offline)
    with pytest.raises(UserError, match="looks offline.*pass the file as weights"):
        TorchvisionBackbone("resnet18", weights="DEFAULT").load_pretrained()
    assert TINY().load_pretrained() is None  # no weights but torchvision's (weights of a cnn: tests/test_errors.py)


def test_torchvision_weights_by_name_and_file(monkeypatch, tmp_path):
    """torchvision's InceptionV3 weights carry the auxiliary classifier that vlc builds without."""
    reference = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", lambda *a, **k: reference.state_dict())
    backbone = TorchvisionBackbone("inception_v3", weights="DEFAULT")
    assert "inception_v3 weights DEFAULT" in backbone.load_pretrained()
    torch.testing.assert_close(backbone.body.Conv2d_1a_3x3.conv.weight, reference.Conv2d_1a_3x3.conv.weight)
    wrong = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), wrong)
    with pytest.raises(UserError, match="resnet18.pth is not a torchvision resnet50 state dict"):
        TorchvisionBackbone("resnet50", weights=str(wrong)).load_pretrained()
    assert TorchvisionBackbone("resnet18", weights="None").weights is None  # a command line's null


def test_load_classifier_checkpoint_with_its_normalisation(tmp_path):
    source = functools.partial(TINY, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    classifier = ImageClassifier(backbone=source, num_classes=5)
    path = tmp_path / "classifier.ckpt"
    torch.save({"state_dict": classifier.state_dict(), "hyper_parameters": {"num_classes": 5}}, path)
    backbone = TINY()
    report = backbone.load_classifier_checkpoint(path)
    for key, value in backbone.state_dict().items():
        torch.testing.assert_close(value, classifier.backbone.state_dict()[key])
    assert "std" in report.loaded and not report.mismatched and not report.new
    assert torch.allclose(backbone.std, torch.full_like(backbone.std, 0.25 * 255))
    wider = ResidualCNN(widths=[8, 32], stem_width=8).load_classifier_checkpoint(path)  # the last stage differs
    assert wider.mismatched and all(name.startswith("body.2.") for name in wider.mismatched)
    assert "body.0.0.weight" in wider.loaded and "shape mismatch (random init)" in wider.summary()
    with pytest.raises(UserError, match="none of the .* backbone tensors .* fit"):
        TorchvisionBackbone("resnet18").load_classifier_checkpoint(path)
    with pytest.raises(UserError, match="does not exist"):
        backbone.load_classifier_checkpoint(tmp_path / "nope.ckpt")
    torch.save({"state_dict": {"weight": torch.zeros(2)}}, tmp_path / "other.ckpt")
    with pytest.raises(UserError, match="not a vlc classification checkpoint"):
        backbone.load_classifier_checkpoint(tmp_path / "other.ckpt")


def test_a_classifier_checkpoint_of_an_earlier_vlc_initialises_a_backbone(tmp_path):
    old = tmp_path / "old.ckpt"
    shutil.copy(LEGACY / "1769cae" / "classifier.ckpt", old)
    state = torch.load(old, weights_only=True)["state_dict"]
    report = TINY().load_classifier_checkpoint(old)
    assert not report.mismatched and not report.new and "body.2.conv2.weight" in report.loaded
    assert any(key.startswith("net.features.") for key in state)  # the old layout, converted on reading


def test_freeze_specs_keep_frozen_batch_norms_in_eval_mode():
    backbone = TINY()
    backbone.freeze("blocks:2")
    frozen = {n for n, p in backbone.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in backbone.named_parameters() if n.startswith(("body.0.", "body.1."))}
    backbone.train()
    assert not backbone.body[0][1].training and backbone.body[2].bn2.training
    named = TINY()
    named.freeze(["1.conv1", "2"])
    assert {n for n, p in named.named_parameters() if not p.requires_grad} == {
        n for n, _ in named.named_parameters() if n.startswith(("body.1.conv1.", "body.2."))
    }
    everything = TINY()
    everything.freeze("all")
    assert not any(p.requires_grad for p in everything.parameters())
    with pytest.raises(UserError, match="'featurez' matches no layer of the backbone.*0, 1, 2"):
        TINY().freeze(["featurez"])
    with pytest.raises(UserError, match=r"blocks:N' with N in 0\.\.3"):
        TINY().freeze("blocks:99")
