"""vlc export of a captioner (encoder + one decoder step + vocabulary), and the predictor's greedy and beam search
in numpy, against vlc predict: the same captions, scores within 1e-4, at batch sizes other than the export's."""

import csv
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from helpers import CONFIGS
from PIL import Image
from test_export import write_photos

from vlc.cli import main
from vlc.data.datasets.shapes import render, sample_scene
from vlc.onnx_predict.__main__ import main as onnx_predict
from vlc.vocabulary import Vocabulary

FIT = [
    "fit",
    "--config",
    str(CONFIGS / "demo" / "caption.yaml"),
    "--model.encoder.widths=[16, 32]",
    "--model.encoder.stem_width=16",
    "--model.decoder.hidden_dim=32",
    "--model.decoder.embed_dim=16",
    "--data.num_images=160",
    "--data.batch_size=32",
    "--trainer.max_epochs=1",
    "--trainer.enable_progress_bar=false",
    "--trainer.precision=32-true",
]
DECODERS = {
    "attention": ["--model.decoder.attention_dim=16"],
    "lstm": ["--model.decoder=vlc.models.LSTMDecoder"],  # Show and Tell: no memory, a (layers, batch, H) state
}
CKPT = Path("checkpoints") / "demo-caption" / "version_0" / "last.ckpt"
BEAM = {"strategy": "beam", "beam_width": 3, "length_penalty": 0.7, "min_len": 3, "no_repeat_ngram": 2}
BEAM_CLI = [f"--model.decoding.{k}={v}" for k, v in BEAM.items()] + ["--model.decoding.num_captions=2"]
BEAM_CLI += ["--model.decoding.banned_endings=[of, the]"]


def vlc_predict(output: str, *extra: str) -> None:
    main(
        ["predict", "--config", str(CONFIGS / "predict" / "caption.yaml"), f"--ckpt_path={CKPT}"]
        + ["--data.predict_dir=images", "--data.image_size=64", "--data.batch_size=6", f"--writer.output={output}"]
        + ["--trainer.enable_progress_bar=false", *extra]
    )


@pytest.fixture(scope="module", params=list(DECODERS))
def exported(request, tmp_path_factory):
    """A captioner trained for one short epoch, exported, and vlc predict's greedy and beam captions of a folder."""
    work = tmp_path_factory.mktemp(f"caption-{request.param}")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.chdir(work)
    try:
        main([*FIT, *DECODERS[request.param]])
        main(["export", "--ckpt_path", str(CKPT), "--output", "out/captioner.onnx"])
        write_photos(work / "images")
        for i in range(9000, 9008):  # shapes scenes the model has not seen
            Image.fromarray(render(sample_scene(0, i, 2), 0, i)).save(work / "images" / f"scene{i}.png")
        vlc_predict("torch/greedy.csv")
        vlc_predict("torch/beam.csv", *BEAM_CLI)
        yield work
    finally:
        monkeypatch.undo()


def rows(path: Path) -> dict[str, dict]:
    with path.open(encoding="utf-8") as f:
        return {row["file"]: row for row in csv.DictReader(f)}


def assert_same_captions(expected: Path, got: Path) -> None:
    want, have = rows(expected), rows(got)
    assert list(have) == list(want) and len(want) == 28
    # the same columns in order, but vlc predict's ood_score (its checkpoint's feature statistics are not exported)
    assert list(next(iter(have.values()))) == [c for c in next(iter(want.values())) if c != "ood_score"]
    for file, row in want.items():
        assert have[file]["caption"] == row["caption"] and row["caption"], file
        assert abs(float(have[file]["score"]) - float(row["score"])) <= 1e-4, file
        if "alternatives" in row:
            alternatives, wanted = json.loads(have[file]["alternatives"]), json.loads(row["alternatives"])
            assert [c for c, _ in alternatives] == [c for c, _ in wanted] and len(wanted) == 2, file
            assert np.allclose([s for _, s in alternatives], [s for _, s in wanted], atol=1e-4, rtol=0), file
    skipped = got.with_name(got.stem + ".skipped.csv").read_text()
    assert skipped == expected.with_name(expected.stem + ".skipped.csv").read_text() and skipped.count("\n") == 9


def test_the_export_writes_the_encoder_the_step_and_the_vocabulary(exported):
    out = exported / "out"
    assert sorted(p.name for p in out.iterdir()) == ["captioner.onnx", "captioner.step.onnx", "captioner.vocab.json"]
    hparams = torch.load(exported / CKPT, weights_only=True)["hyper_parameters"]
    assert Vocabulary.load(out / "captioner.vocab.json") == Vocabulary.from_dict(hparams["vocab"])
    for name in ("captioner.onnx", "captioner.step.onnx"):
        record = json.loads({p.key: p.value for p in onnx.load(out / name).metadata_props}["vlc"])
        assert record["kind"] == "captioning" and record["image_size"] == 64
        assert record["decoding"] == {
            **hparams["decoding"],
            "banned_endings": list(hparams["decoding"]["banned_endings"]),
        }
    step = onnx.load(out / "captioner.step.onnx")
    inputs = {i.name: i.type.tensor_type.shape.dim[0].dim_param for i in step.graph.input}
    assert list(inputs)[:3] == ["tokens", "h", "c"] and all(inputs.values())  # one dynamic row axis
    assert [o.name for o in step.graph.output] == ["log_probs", "new_h", "new_c"]


@pytest.mark.parametrize("batch_size", [1, 3, 7])
def test_greedy_captions_are_vlc_predicts(exported, batch_size, monkeypatch):
    monkeypatch.chdir(exported)
    out = f"onnx/greedy{batch_size}.csv"
    onnx_predict(["out/captioner.onnx", "images", "--output", out, "--batch_size", str(batch_size)])
    assert_same_captions(exported / "torch" / "greedy.csv", exported / out)


@pytest.mark.parametrize("batch_size", [1, 7])
def test_beam_captions_and_scores_are_vlc_predicts(exported, batch_size, monkeypatch):
    monkeypatch.chdir(exported)
    out = f"onnx/beam{batch_size}.csv"
    options = [arg for k, v in BEAM.items() for arg in (f"--{k}", str(v))] + ["--num_captions", "2"]
    options += ["--banned_endings", "of,the"]
    onnx_predict(["out/captioner.onnx", "images", "--output", out, "--batch_size", str(batch_size), *options])
    assert_same_captions(exported / "torch" / "beam.csv", exported / out)


def test_decoding_mistakes_are_one_line_errors(exported, monkeypatch, capsys):
    monkeypatch.chdir(exported)
    for args, message in [
        (["--num_captions", "2"], "--num_captions: 2 captions need --strategy beam with a --beam_width of at least 2"),
        (["--banned_endings", "a,zebra"], "--banned_endings: ['zebra'] are not words of the vocabulary"),
        (["--max_len", "0"], "--max_len: expected at least 1, got 0"),
        (["--submission", "s.csv"], "--submission: a submission file needs a classifier's predictions"),
    ]:
        with pytest.raises(SystemExit) as stop:
            onnx_predict(["out/captioner.onnx", "images", "--output", "x.csv", *args])
        err = capsys.readouterr().err
        assert stop.value.code == 2 and err.startswith("vlc: error: ") and message in err, err
    assert not Path("x.csv").exists()
