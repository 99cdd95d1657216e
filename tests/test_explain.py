"""Grad-CAM for classifiers: the maps against captum and a hand-derived case, and `vlc predict --writer.explain`."""

import csv
import functools
import json
import os

import numpy as np
import pytest
import torch
from captum.attr import LayerGradCam
from helpers import CONFIGS, FAST_PRECISION, run_cli, tiny_classifier_fit, write_tinyimagenet30
from PIL import Image
from torch import nn

from vlc.cli import main
from vlc.explain.gradcam import grad_cam, upsample
from vlc.explain.ood import CHECKPOINT_KEY, FeatureStatistics, ood_note, ood_scores
from vlc.explain.render import BAND, FRAME
from vlc.models import AirbenchNet, ResidualCNN, TorchvisionBackbone
from vlc.models.backbone import ImageBackbone
from vlc.tasks.classifier import ImageClassifier

BACKBONES = {
    "cnn": functools.partial(ResidualCNN, widths=[8, 16], stem_width=8, image_size=32),
    "airbench": functools.partial(AirbenchNet, widths=[8, 16], whiten=False, image_size=32),
    "resnet18": functools.partial(TorchvisionBackbone, name="resnet18", image_size=64),
}


def images(n: int, size: int = 32) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


@pytest.mark.parametrize("family", list(BACKBONES))
def test_grad_cam_equals_captum_layer_grad_cam(family):
    torch.manual_seed(0)
    model = ImageClassifier(backbone=BACKBONES[family], num_classes=3).train()  # grad_cam switches to eval itself
    batch, targets = images(4), torch.tensor([0, 1, 2, 1])
    layer = model.backbone.feature_layer
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):  # as in a bf16-mixed predict loop
        ours = grad_cam(model, layer, batch.clone(), targets.clone(), forward=model.logits)  # inference tensors
    assert model.training  # its mode is restored
    model.eval()
    theirs = LayerGradCam(model.logits, layer).attribute(batch.float(), target=targets, relu_attributions=True)
    assert ours.dtype == torch.float32 and ours.shape == theirs.shape[:1] + theirs.shape[2:]
    assert ours.shape[-1] > 1  # a real grid: airbench's layer is the one before its pool to 1x1
    assert theirs.abs().max() > 0
    torch.testing.assert_close(ours, theirs[:, 0].float(), rtol=1e-5, atol=1e-7)


def test_grad_cam_of_a_linear_network_is_the_head_weighted_grid():
    """body: a 1x1 convolution (A = V x); logits = W mean(A) + b, so dy_c/dA_k = W[c, k] / (h w) everywhere and the
    map is ReLU(sum_k W[c, k] A_k) / (h w)."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 1)
    backbone = functools.partial(ImageBackbone, conv, 4, mean=(0.5,) * 3, std=(1 / 255,) * 3, channels_last=False)
    model = ImageClassifier(backbone=backbone, num_classes=2)
    batch, targets = images(3, size=5), torch.tensor([1, 0, 1])
    maps = grad_cam(model, model.backbone.feature_layer, batch, targets, forward=model.logits)
    grid = conv(batch.float() - 127.5)  # the normalisation only centres the pixels: (3, 4, 5, 5)
    weights = model.head.weight[targets] / 25  # (3, 4)
    expected = torch.relu(torch.einsum("bk,bkhw->bhw", weights, grid)).detach()
    assert (expected > 0).any(dim=(1, 2)).all() and (expected == 0).any()  # evidence, and where ReLU cuts
    torch.testing.assert_close(maps, expected, rtol=1e-5, atol=1e-5)
    up = upsample(maps, (10, 10))
    assert up.shape == (3, 10, 10) and up.amax() <= 1 and torch.allclose(up.flatten(1).amax(1), torch.ones(3))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny classifier trained for one epoch on three classes, and a folder of images to predict."""
    work = tmp_path_factory.mktemp("explain")
    write_tinyimagenet30(work / "data", per_class=8)  # 6 validation images
    cwd = os.getcwd()
    os.chdir(work)
    try:
        main(tiny_classifier_fit(work / "data"))
    finally:
        os.chdir(cwd)
    photos = work / "photos"
    (photos / "sub").mkdir(parents=True)
    for i, path in enumerate([photos / "a.jpg", photos / "a.png", photos / "sub" / "b.png"]):
        Image.fromarray(images(1, 24)[0].permute(1, 2, 0).numpy() // (i + 1)).save(path)
    (photos / "notes.txt").write_text("not an image")
    return work / "checkpoints" / "tinyimagenet30-cnn" / "version_0" / "last.ckpt", photos


def predict(ckpt, folder, output, *extra) -> list[str]:
    return [
        "predict",
        "--config",
        str(CONFIGS / "predict" / "classify.yaml"),
        f"--ckpt_path={ckpt}",
        f"--data.predict_dir={folder}",
        "--data.image_size=16",
        f"--writer.output={output}",
        "--trainer.enable_progress_bar=false",
        *extra,
    ]


def test_predict_explain_writes_one_overlay_per_image(checkpoint, tmp_path, capsys):
    ckpt, photos = checkpoint
    output = tmp_path / "out" / "pred.csv"
    assert run_cli(capsys, predict(ckpt, photos, output, "--writer.explain=true"))[0] == 0
    with output.open() as f:
        rows = list(csv.DictReader(f))
    overlays = {os.path.relpath(row["file"], photos): row["overlay"] for row in rows}
    assert overlays == {  # mirrors the folder; the image's suffix is kept, so a.jpg and a.png do not collide
        "a.jpg": "pred.explain/a.jpg.png",
        "a.png": "pred.explain/a.png.png",
        "sub/b.png": "pred.explain/sub/b.png.png",
    }
    for row in rows:
        picture = np.asarray(Image.open(output.parent / row["overlay"]).convert("RGB"))
        assert picture.shape == (FRAME + BAND, 2 * FRAME, 3)  # the image, then the image under its heat map
        image, overlay = picture[:FRAME, :FRAME].astype(int), picture[:FRAME, FRAME:].astype(int)
        assert np.abs(image - overlay).mean() > 5  # the heat map is drawn
    assert sorted(p.relative_to(output.parent).as_posix() for p in output.parent.rglob("*.png")) == sorted(
        overlays.values()
    )
    # the same in JSON, in the fast precision (autocast stays off for the maps)
    json_output = tmp_path / "pred.json"
    assert (
        run_cli(
            capsys, predict(ckpt, photos, json_output, "--writer.explain=true", f"--trainer.precision={FAST_PRECISION}")
        )[0]
        == 0
    )
    json_rows = json.loads(json_output.read_text())
    assert [r["overlay"] for r in json_rows] == [r["overlay"] for r in rows]
    assert all((tmp_path / r["overlay"]).is_file() for r in json_rows)


def test_predict_without_explain_has_no_overlay_column(checkpoint, tmp_path, capsys):
    ckpt, photos = checkpoint
    assert run_cli(capsys, predict(ckpt, photos, tmp_path / "p.csv"))[0] == 0
    with (tmp_path / "p.csv").open() as f:
        assert "overlay" not in next(csv.reader(f))
    assert not (tmp_path / "p.explain").exists()


def test_predict_one_image_file_prints_its_top_classes(checkpoint, tmp_path, capsys):
    ckpt, photos = checkpoint
    photo = photos / "sub" / "b.png"
    output = tmp_path / "one.csv"
    main(predict(ckpt, photo, output, "--writer.explain=true"))
    out = capsys.readouterr().out
    with output.open() as f:
        (row,) = list(csv.DictReader(f))
    assert row["file"] == str(photo) and row["overlay"] == "one.explain/b.png.png"
    assert (tmp_path / row["overlay"]).is_file()
    printed = out[out.index(f"{photo}:") :].splitlines()
    top = json.loads(row["top_k"])  # three classes: all three are listed, best first
    assert [line.split() for line in printed[1:4]] == [[name, f"{p:.3f}"] for name, p in top]
    assert f"explanation: {tmp_path / row['overlay']}" in out
    assert f"ood_score: {float(row['ood_score']):.2f}" in out


def test_predict_a_file_that_is_no_image_or_no_path_stops_in_one_line(checkpoint, tmp_path, capsys):
    ckpt, photos = checkpoint
    err = run_cli(capsys, predict(ckpt, photos / "notes.txt", tmp_path / "p.csv"))[1]
    assert err.strip().splitlines()[-1] == (
        f"vlc: error: data.predict_dir: {photos / 'notes.txt'}: not an image file (Pillow cannot identify its format)"
    )
    err = run_cli(capsys, predict(ckpt, photos / "missing.jpg", tmp_path / "p.csv"))[1]
    assert f"vlc: error: {photos / 'missing.jpg'}: no such file or folder" in err


def test_feature_statistics_score_like_images_near_1_and_others_far_above():
    rng = torch.Generator().manual_seed(0)
    stats = FeatureStatistics()
    for _ in range(4):
        stats.update(torch.randn(500, 16, generator=rng) * 3 + 5)  # 2,000 validation images
    summary = stats.summary()
    assert summary["images"] == 2000 and len(summary["mean"]) == 16
    like = torch.tensor(ood_scores(torch.randn(1000, 16, generator=rng) * 3 + 5, summary))
    assert 0.005 < (like > 1).float().mean() < 0.02  # 1 in 100 of the same kind score above 1
    assert min(ood_scores(torch.randn(10, 16, generator=rng) * 3 + 15, summary)) > 3  # shifted by 3.3 std
    assert ood_note(like.tolist()) is None
    assert ood_note([0.5, 3.0]).startswith("1 of the 2 images look unlike") and "ood_score > 1" in ood_note([2.0])
    assert FeatureStatistics().summary() is None  # nothing measured: no statistics, no score


def test_predictions_say_when_images_look_unlike_the_validation_images(checkpoint, tmp_path, capsys):
    ckpt, photos = checkpoint
    stats = torch.load(ckpt, weights_only=False)[CHECKPOINT_KEY]  # measured on the validation set at fit time
    assert stats["images"] == 6 and len(stats["mean"]) == 16 and stats["distance_q99"] > 0
    unlike = tmp_path / "unlike"
    unlike.mkdir()
    for i in range(3):  # flat halves of black and white: nothing like the noisy colours it was trained on
        half = np.zeros((16, 16, 3), np.uint8)
        half[:, : 4 * (i + 1)] = 255
        Image.fromarray(half).save(unlike / f"u{i}.png")
    familiar = ckpt.parents[3] / "data" / "test_set"
    notes = {}
    for name, folder in (("familiar", familiar), ("unlike", unlike)):
        code, err = run_cli(capsys, predict(ckpt, folder, tmp_path / f"{name}.csv"))
        assert code == 0
        notes[name] = [line for line in err.splitlines() if "look unlike" in line]
        with (tmp_path / f"{name}.csv").open() as f:
            notes[name + "_scores"] = [float(row["ood_score"]) for row in csv.DictReader(f)]
    assert notes["familiar"] == [] and sorted(notes["familiar_scores"])[3] < 1  # most are within the validation's
    assert min(notes["unlike_scores"]) > 3
    assert notes["unlike"] == [
        "vlc: warning: 3 of the 3 images look unlike the images the model was validated on: their features lie "
        "farther from them than 99% of the validation images' do (column ood_score > 1); the predictions may mean "
        "little"
    ]


def test_a_checkpoint_without_the_statistics_predicts_without_score_or_note(checkpoint, tmp_path, capsys):
    ckpt, photos = checkpoint
    old = torch.load(ckpt, weights_only=False)
    del old[CHECKPOINT_KEY]  # as written before vlc measured them
    torch.save(old, tmp_path / "old.ckpt")
    code, err = run_cli(capsys, predict(tmp_path / "old.ckpt", photos, tmp_path / "p.csv"))
    assert code == 0 and "unlike" not in err
    with (tmp_path / "p.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and "ood_score" not in rows[0]
