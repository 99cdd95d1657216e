"""Checkpoints written by earlier vlc versions still load, predict exactly as they did, and resume training.

``tests/legacy/<commit>/`` holds checkpoints made by ``tests/legacy/make_checkpoints.py`` at that commit (1769cae:
before resumable runs; b42ee2e: after resumable runs and images in the wild, before the one-backbone redesign;
1005777: one ``ImageBackbone`` chosen by ``name``, before the backbone families, with an airbench classifier and an
airbench captioning encoder; 1005777-caption: a captioner with flat decoding and scoring arguments, before they
became ``decoding`` and ``scoring`` objects), with the predictions that version made for ``tests/legacy/images``.
"""

import csv
import shutil
from functools import partial
from pathlib import Path

import pytest
import torch
from helpers import CONFIGS, run_cli

from vlc.checkpoint_upgrade import upgrade
from vlc.checkpoints import import_class
from vlc.models import LSTMDecoder, ResidualCNN
from vlc.tasks import ImageCaptioner

LEGACY = Path(__file__).resolve().parent / "legacy"
CHECKPOINTS = sorted(LEGACY.glob("*/*.ckpt"))


def test_every_legacy_checkpoint_is_there():
    """Eleven files: an empty glob would make the tests below pass vacuously (``*.ckpt`` is git-ignored elsewhere)."""
    names = ("captioner-attention", "captioner-lstm", "classifier")
    assert [f"{p.parent.name}/{p.name}" for p in CHECKPOINTS] == [
        *(f"1005777/{name}.ckpt" for name in (*names[:2], "classifier-airbench", "classifier")),
        "1005777-caption/captioner-lstm.ckpt",
        *(f"{version}/{name}.ckpt" for version in ("1769cae", "b42ee2e") for name in names),
    ]


def rows(path: Path) -> dict[str, dict]:
    with path.open(newline="") as f:
        return {Path(row["file"]).name: row for row in csv.DictReader(f)}


@pytest.mark.parametrize("ckpt", CHECKPOINTS, ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_an_old_checkpoint_predicts_what_it_predicted(ckpt, tmp_path, capsys):
    task = "classify" if ckpt.stem.startswith("classifier") else "caption"
    out = tmp_path / "predictions.csv"
    args = ["predict", "--config", str(CONFIGS / "predict" / f"{task}.yaml"), f"--ckpt_path={ckpt}"]
    args += [f"--data.predict_dir={LEGACY / 'images'}", "--data.image_size=64", f"--writer.output={out}"]
    code, err = run_cli(capsys, args)
    assert code == 0, err
    expected, got = rows(ckpt.with_suffix(".csv")), rows(out)
    assert got.keys() == expected.keys() and len(got) == 4
    for name, row in expected.items():
        if task == "classify":
            assert got[name]["label"] == row["label"]
            assert float(got[name]["probability"]) == pytest.approx(float(row["probability"]), abs=2e-6)
        else:
            assert got[name]["caption"] == row["caption"]
            assert float(got[name]["score"]) == pytest.approx(float(row["score"]), abs=2e-5)


@pytest.mark.parametrize(
    "version, name",
    [("b42ee2e", "classifier"), ("b42ee2e", "captioner-attention"), ("1005777", "classifier-airbench")],
)
def test_an_old_checkpoint_resumes_training(version, name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ckpt = tmp_path / "old.ckpt"
    shutil.copy(LEGACY / version / f"{name}.ckpt", ckpt)
    task = "classify" if name.startswith("classifier") else "caption"
    args = ["fit", "--config", str(CONFIGS / "demo" / f"{task}.yaml"), f"--ckpt_path={ckpt}"]
    args += ["--data.num_images=256", "--data.batch_size=32", "--trainer.max_epochs=2"]
    args += ["--trainer.enable_progress_bar=false"] + (["--data.num_test=64"] if task == "classify" else [])
    code, err = run_cli(capsys, args)
    assert code == 0, err
    resumed = next(Path("checkpoints").rglob("last.ckpt"))
    assert torch.load(resumed, map_location="cpu", weights_only=True)["epoch"] == 1


@pytest.mark.parametrize("version", ["1769cae", "b42ee2e"])
def test_old_glove_vectors_stay_what_caption_cosine_scores_with(version):
    checkpoint = torch.load(LEGACY / version / "captioner-lstm.ckpt", map_location="cpu", weights_only=True)
    glove = checkpoint["glove"].clone()
    hparams = upgrade(checkpoint)["hyper_parameters"]
    decoder, encoder = hparams["decoder"], hparams["encoder"]
    assert encoder["class_path"] == "vlc.models.ResidualCNN"
    assert decoder["class_path"] == "vlc.models.LSTMDecoder" and decoder["init_args"]["num_layers"] == 2
    model = ImageCaptioner(
        encoder=partial(ResidualCNN, **encoder["init_args"]),
        decoder=partial(LSTMDecoder, **decoder["init_args"]),
        glove_path=hparams["glove_path"],
        vocab=hparams["vocab"],
    )
    model.load_state_dict(checkpoint["state_dict"])
    assert torch.equal(model.glove, glove) and model.test_metrics["caption_cosine"].embedding is model.glove


def test_flat_decoding_and_scoring_arguments_become_their_objects(tmp_path, capsys):
    ckpt = LEGACY / "1005777-caption" / "captioner-lstm.ckpt"
    hparams = upgrade(torch.load(ckpt, map_location="cpu", weights_only=True))["hyper_parameters"]
    assert hparams["decoding"] == {
        **{"strategy": "beam", "beam_width": 3, "max_len": 12, "length_penalty": 0.5, "min_len": 1},
        **{"no_repeat_ngram": 2, "banned_endings": ["a", "the"], "num_captions": 2},
    }
    assert hparams["scoring"] == {"tokenizer": "vlc", "meteor": False, "num_samples": 2, "baselines": False}
    assert not {"beam_width", "meteor", "num_captions", "baselines"} & hparams.keys()
    # one value given replaces the checkpoint's alone: the other decoding options stay the checkpoint's
    out = tmp_path / "one.csv"
    args = ["predict", "--config", str(CONFIGS / "predict" / "caption.yaml"), f"--ckpt_path={ckpt}"]
    args += [f"--data.predict_dir={LEGACY / 'images'}", "--data.image_size=64", f"--writer.output={out}"]
    code, err = run_cli(capsys, [*args, "--model.decoding.num_captions=1"])
    assert code == 0, err
    expected = rows(ckpt.with_suffix(".csv"))
    assert {name: row["caption"] for name, row in rows(out).items()} == {n: r["caption"] for n, r in expected.items()}
    assert "alternatives" not in next(iter(rows(out).values()))


@pytest.mark.parametrize(
    ("old", "class_path", "init_args"),
    [
        (  # the options a network named airbench had unless its config set them: the old class's, not airbench94's
            {"name": "airbench", "widths": [8, 16], "depths": 1, "weights": None, "image_size": 32},
            "vlc.models.AirbenchNet",
            {"widths": [8, 16], "whiten": False, "identity_init": False, "bn_momentum": 0.1, "bn_eps": 1e-5}
            | {"bn_scale": True, "stem_stride": 1, "whiten_bias_epochs": None, "image_size": 32},
        ),
        (
            {"name": "cnn", "stem_width": 8, "whiten": False, "mean": [0.5, 0.5, 0.5]},
            "vlc.models.ResidualCNN",
            {"widths": [32, 64, 128, 256], "depths": 1, "stem_width": 8, "batch_norm": True, "mean": [0.5, 0.5, 0.5]},
        ),
        (
            {"name": "inception_v3", "weights": "DEFAULT", "widths": [32, 64], "channels_last": False},
            "vlc.models.TorchvisionBackbone",
            {"name": "inception_v3", "weights": "DEFAULT", "channels_last": False},
        ),
    ],
)
def test_an_image_backbone_chosen_by_name_becomes_its_family(old, class_path, init_args):
    """Options of other families are dropped; the family's own that are missing keep the old class's defaults."""
    for key in ("backbone", "encoder"):
        checkpoint = {"hyper_parameters": {key: {"class_path": "vlc.models.ImageBackbone", "init_args": old}}}
        assert upgrade(checkpoint)["hyper_parameters"][key] == {"class_path": class_path, "init_args": init_args}


def test_an_old_airbench_without_its_switches_stays_the_plain_network():
    old = {"class_path": "vlc.models.ImageBackbone", "init_args": {"name": "airbench", "widths": [8, 16]}}
    new = upgrade({"hyper_parameters": {"backbone": old}})["hyper_parameters"]["backbone"]
    plain = import_class(new["class_path"])(**new["init_args"])
    norm = plain.body.group1.norm1  # a trained stem, learnt scales, torch's batch-norm statistics
    assert plain.whitening is None and (norm.momentum, norm.eps) == (0.1, 1e-5) and "weight" in norm._parameters
