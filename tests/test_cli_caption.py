"""The captioning workflow through the real CLI: fit -> validate -> test -> predict, then read the artefacts."""

import csv
import json
import os
from pathlib import Path

import pytest
import torch
from helpers import FAST_PRECISION
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from vlc.cli import main
from vlc.data.datasets.shapes import captions, render, sample_scene
from vlc.vocabulary import Vocabulary

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
DEMO = [
    "--config",
    str(CONFIGS / "demo" / "caption.yaml"),
    "--model.encoder.widths=[16, 32, 64]",
    "--model.encoder.stem_width=16",
    "--model.decoder.hidden_dim=64",
    "--model.decoder.embed_dim=32",
    "--model.decoder.attention_dim=32",
    "--model.optimizer.lr=0.003",
    "--model.scheduler.max_lr=0.005",
    "--data.num_images=800",
    "--data.batch_size=32",
    "--trainer.enable_progress_bar=false",
    f"--trainer.precision={FAST_PRECISION}",
]
CKPT_DIR = Path("checkpoints") / "demo-caption" / "version_0"


def events(run: Path) -> EventAccumulator:
    """Every event of one run folder, nothing dropped."""
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def runs(logs: Path) -> list[Path]:
    return sorted((p for p in logs.rglob("version_*") if p.is_dir()), key=lambda p: p.stat().st_mtime)


def write_scenes(folder: Path, indices: range) -> dict[str, list[str]]:
    """Shapes scenes the demo never trained on, as PNG files; returns their true captions by file name."""
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for i in indices:
        shapes = sample_scene(0, i, 2)
        Image.fromarray(render(shapes, 0, i)).save(folder / f"scene{i}.png")
        truth[f"scene{i}.png"] = captions(shapes)
    return truth


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short demo training (4 epochs of a small net on 640 scenes, ~10 s), shared by the tests below."""
    work = tmp_path_factory.mktemp("caption")
    cwd = os.getcwd()
    os.chdir(work)
    try:
        main(["fit", *DEMO, "--trainer.max_epochs=4"])
        yield work
    finally:
        os.chdir(cwd)


def test_fit_logs_metrics_samples_checkpoints_and_vocab(trained):
    (run,) = runs(trained / "logs")
    acc = events(run)
    scalars = set(acc.Tags()["scalars"])
    metrics = {f"val/bleu_{n}" for n in range(1, 5)} | {"val/cider_d", "val/rouge_l", "val/caption_cosine"}
    assert metrics | {"val/loss", "val/perplexity", "train/loss_step", "train/perplexity"} <= scalars
    collapse = {"val/distinct_captions", "val/ended", "val/vocabulary_used"}  # collapse shows on the dashboard
    assert collapse <= scalars and not any("constant" in tag for tag in scalars)  # baselines: evaluations only
    assert 0 < acc.Scalars("val/distinct_captions")[-1].value <= 1 and acc.Scalars("val/vocabulary_used")[-1].value > 1
    assert "val/meteor" not in scalars  # off unless model.scoring.meteor
    assert {"hp/best_val_bleu_4", "hp/val_cider_d"} <= scalars  # the HPARAMS tab's scores
    assert len(acc.Scalars("val/bleu_4")) == 4  # one point per epoch
    for tag in metrics - {"val/cider_d", "val/caption_cosine"}:  # 0-1 scale
        assert all(0.0 <= e.value <= 1.0 for e in acc.Scalars(tag)), tag
    assert acc.Scalars("val/bleu_1")[-1].value > 0.3
    assert len(acc.Images("val/samples")) == 4
    text = acc.Tensors("val/captions/text_summary")[-1].tensor_proto.string_val[0].decode()
    assert text.startswith("| # | generated | references |") and len(text.splitlines()) == 2 + 8
    ckpt_dir = trained / CKPT_DIR
    assert (ckpt_dir / "last.ckpt").is_file() and list(ckpt_dir.glob("best-epoch*-bleu4*.ckpt"))
    hparams = torch.load(ckpt_dir / "last.ckpt", weights_only=True)["hyper_parameters"]
    assert Vocabulary.load(ckpt_dir / "vocab.json") == Vocabulary.load(run / "vocab.json")
    assert Vocabulary.from_dict(hparams["vocab"]) == Vocabulary.load(ckpt_dir / "vocab.json")


def test_validate_and_test_from_the_checkpoint(trained, capsys):
    os.chdir(trained)
    ckpt = str(CKPT_DIR / "last.ckpt")
    main(["validate", *DEMO, f"--ckpt_path={ckpt}"])
    main(["test", *DEMO, f"--ckpt_path={ckpt}"])
    out = capsys.readouterr().out
    assert "val/bleu_4" in out and "test/bleu_4" in out and "test/caption_cosine" in out
    run = trained / "logs" / "demo-caption" / "version_0"  # the evaluations are filed under the run they evaluate
    assert "val/bleu_4" in events(run / "validate").Tags()["scalars"]
    acc = events(run / "test")
    assert {"test/bleu_4", "test/cider_d", "test/perplexity"} <= set(acc.Tags()["scalars"])
    for stage, stage_events in (("val", events(run / "validate")), ("test", acc)):  # each score beside its floors
        tags = set(stage_events.Tags()["scalars"])
        for baseline in ("constant", "nearest"):
            assert {f"{stage}/{baseline}_bleu_4", f"{stage}/{baseline}_cider_d", f"{stage}/{baseline}_rouge_l"} <= tags
        assert stage_events.Scalars(f"{stage}/constant_distinct_captions")[0].value < 0.1  # one caption for all


@pytest.mark.parametrize("suffix", ["csv", "json"])
def test_predict_writes_one_caption_per_image_and_images_get_different_captions(trained, suffix):
    os.chdir(trained)
    truth = write_scenes(trained / f"scenes_{suffix}", range(9000, 9012))
    out = trained / "predictions" / f"captions.{suffix}"
    main(
        [
            "predict",
            "--config",
            str(CONFIGS / "predict" / "caption.yaml"),
            f"--ckpt_path={CKPT_DIR / 'last.ckpt'}",
            f"--data.predict_dir={trained / f'scenes_{suffix}'}",
            "--data.image_size=64",
            f"--writer.output={out}",
        ]
    )
    if suffix == "csv":
        with out.open(newline="") as f:
            rows = list(csv.DictReader(f))
    else:
        rows = json.loads(out.read_text())
    assert sorted(Path(row["file"]).name for row in rows) == sorted(truth)
    # one caption unless model.decoding.num_captions says more; ood_score: the checkpoint has its validation statistics
    assert set(rows[0]) == {"file", "caption", "score", "ood_score"}
    generated = [row["caption"] for row in rows]
    assert all(caption.split() for caption in generated)
    assert len(set(generated)) >= len(generated) // 2, generated  # not the same caption for every image
    assert all(float(row["score"]) <= 0 for row in rows)


def test_a_vocabulary_that_does_not_match_the_checkpoint_stops(trained, capsys):
    os.chdir(trained)
    words = Vocabulary.load(CKPT_DIR / "vocab.json").words[4:]
    other = trained / "other_vocab.json"
    Vocabulary(words[::-1]).save(other)
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", *DEMO, f"--ckpt_path={CKPT_DIR / 'last.ckpt'}", f"--data.vocab_file={other}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "vlc: error: --ckpt_path: the vocabulary does not match the checkpoint's" in err and "Traceback" not in err
    main(["validate", *DEMO, f"--ckpt_path={CKPT_DIR / 'last.ckpt'}", f"--data.vocab_file={CKPT_DIR / 'vocab.json'}"])


def test_a_captioning_checkpoint_does_not_predict_as_a_classifier(trained, capsys):
    os.chdir(trained)
    config = str(CONFIGS / "predict" / "classify.yaml")
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--config", config, f"--ckpt_path={CKPT_DIR / 'last.ckpt'}", f"--data.predict_dir={trained}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "was trained as ImageCaptioner, but the config's model is ImageClassifier" in err
    assert "configs/predict/caption.yaml" in err and "Traceback" not in err
    assert not (trained / "predictions" / "classify.csv").exists()


def test_compare_shows_caption_scores(trained, capsys):
    os.chdir(trained)
    main(["test", *DEMO, "--ckpt_path=last"])
    capsys.readouterr()
    main(["compare", "logs"])
    header, row = capsys.readouterr().out.strip().splitlines()
    assert "val BLEU-4" in header and "test CIDEr-D" in header and "val acc" not in header
    cells = row.split()
    assert cells[:3] == [str(Path("logs") / "demo-caption" / "version_0"), "fit", "complete"]
    assert all(0.0 <= float(value) for value in cells[3:8]) and cells[8] == "4"  # scores, 4 epochs


def test_predict_writes_the_n_best_captions_with_their_scores(trained):
    os.chdir(trained)
    write_scenes(trained / "scenes_nbest", range(9100, 9104))
    out = trained / "predictions" / "nbest.json"
    main(
        [
            "predict",
            "--config",
            str(CONFIGS / "predict" / "caption.yaml"),
            f"--ckpt_path={CKPT_DIR / 'last.ckpt'}",  # trained with greedy decoding: these options replace it
            "--model.decoding.strategy=beam",
            "--model.decoding.beam_width=4",
            "--model.decoding.num_captions=3",
            f"--data.predict_dir={trained / 'scenes_nbest'}",
            "--data.image_size=64",
            f"--writer.output={out}",
        ]
    )
    rows = json.loads(out.read_text())
    assert len(rows) == 4
    for row in rows:
        captions, scores = zip(*row["alternatives"])
        assert len(captions) == 3 == len(set(captions)) and list(scores) == sorted(scores, reverse=True)
        assert (row["caption"], row["score"]) == (captions[0], scores[0]) and all(s <= 0 for s in scores)
