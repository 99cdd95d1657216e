"""vlc export of a classifier, and the torch-free predictor, against vlc predict on the same folder of images.

A tiny demo classifier (shapes data, one short epoch) is exported with test-time averaging; the predictor runs the
file on a folder of photographs of several sizes and of the images in the wild (EXIF, 16-bit, transparency, damaged
and refused files), at batch sizes other than the export's, and must give vlc predict's rows and skip list.
"""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from helpers import CONFIGS, REPO, run_fails
from PIL import Image
from test_images_in_the_wild import write_wild_folder

from vlc.image_files import resize_array
from vlc.images import resize_batch
from vlc.onnx_predict.__main__ import main as onnx_predict

FIT = [
    "fit",
    "--config",
    str(CONFIGS / "demo" / "classify.yaml"),
    "--model.backbone.widths=[8, 16]",
    "--model.backbone.stem_width=8",
    "--data.num_images=240",
    "--data.num_test=30",
    "--data.batch_size=32",
    "--trainer.max_epochs=1",
    "--trainer.enable_progress_bar=false",
]
CKPT = Path("checkpoints") / "demo-classify" / "version_0" / "last.ckpt"
VIEWS = ["--flip_average", "true", "--translate_average", "true"]
BLOCK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError("blocked by the test: " + name)
sys.meta_path.insert(0, Block())
"""


def write_photos(folder: Path) -> Path:
    """Photographs of several sizes (smaller and larger than the model's 64 px) and the images in the wild."""
    write_wild_folder(folder)
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate([(200, 133), (90, 120), (64, 64), (48, 30), (300, 225), (70, 70), (133, 200)]):
        smooth = rng.normal(128, 60, (h // 8 + 2, w // 8 + 2, 3)).clip(0, 255).astype(np.uint8)
        photo = Image.fromarray(smooth).resize((w, h), Image.BICUBIC)  # texture at several scales, like a photo
        photo.save(folder / f"photo{i}.jpg", quality=90)
    return folder


def without(blocked: tuple[str, ...], folder: Path) -> dict:
    """An environment whose Python cannot import the packages ``blocked`` (a ``sitecustomize`` refuses them)."""
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(BLOCK.format(blocked=set(blocked)))
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(REPO)])}


def rows(path: Path) -> dict[str, dict]:
    with path.open(encoding="utf-8") as f:
        return {row["file"]: row for row in csv.DictReader(f)}


def assert_same_predictions(expected: Path, got: Path) -> None:
    """The same files, top-1 labels and top-k labels, probabilities within 1e-4, and the same skip list."""
    want, have = rows(expected), rows(got)
    assert list(have) == list(want) and len(want) == 20
    # the same columns in order, but vlc predict's ood_score (its checkpoint's feature statistics are not exported)
    assert list(next(iter(have.values()))) == [c for c in next(iter(want.values())) if c != "ood_score"]
    for file, row in want.items():
        assert have[file]["label"] == row["label"] and have[file]["class_index"] == row["class_index"], file
        top_want, top_have = json.loads(row["top_k"]), json.loads(have[file]["top_k"])
        assert [name for name, _ in top_have] == [name for name, _ in top_want], file
        assert np.allclose([p for _, p in top_have], [p for _, p in top_want], atol=1e-4, rtol=0), file
    skipped = got.with_name(got.stem + ".skipped.csv").read_text()
    assert skipped == expected.with_name(expected.stem + ".skipped.csv").read_text() and skipped.count("\n") == 9


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The trained classifier, exported with flip and translate averaging, and vlc predict's files for the photos."""
    work = tmp_path_factory.mktemp("export")
    cwd = os.getcwd()
    os.chdir(work)
    try:
        from vlc.cli import main

        main(FIT)
        main(["export", "--ckpt_path", "checkpoints/demo-classify", "--output", "out/model.onnx", *VIEWS])
        write_photos(work / "photos")
        main(
            ["predict", "--config", str(CONFIGS / "predict" / "classify.yaml"), f"--ckpt_path={CKPT}"]
            + ["--data.predict_dir=photos", "--data.batch_size=5", "--writer.output=torch/pred.csv"]
            + ["--writer.submission=torch/submission.csv", "--trainer.enable_progress_bar=false"]
            + ["--model.flip_average=true", "--model.translate_average=true"]
        )
        yield work
    finally:
        os.chdir(cwd)


def test_the_export_is_one_file_with_dynamic_batch_and_its_metadata(exported):
    assert sorted(p.name for p in (exported / "out").iterdir()) == ["model.onnx"]  # no external .onnx.data file
    model = onnx.load(exported / "out" / "model.onnx")
    (images,) = model.graph.input
    dims = [d.dim_param or d.dim_value for d in images.type.tensor_type.shape.dim]
    assert images.type.tensor_type.elem_type == onnx.TensorProto.UINT8 and dims[1] == 3
    assert all(isinstance(d, str) and d for d in (dims[0], dims[2], dims[3]))  # N, H and W dynamic
    meta = {p.key: p.value for p in model.metadata_props}
    record = json.loads(meta["vlc"])
    names = torch.load(exported / CKPT, weights_only=True)["hyper_parameters"]["class_names"]
    assert record["class_names"] == names and json.loads(meta["class_names"]) == names and len(names) == 30
    assert record["kind"] == "classification" and record["image_size"] == 64 and record["vlc_version"]
    assert record["flip_average"] is True and record["translate_average"] is True  # as --flip_average asked


@pytest.mark.parametrize("batch_size", [1, 3, 7])
def test_the_predictor_reproduces_vlc_predict(exported, batch_size, capsys, monkeypatch):
    monkeypatch.chdir(exported)
    out = Path(f"onnx/pred{batch_size}.csv")
    onnx_predict(["out/model.onnx", "photos", "--output", str(out), "--batch_size", str(batch_size)])
    assert f"wrote 20 predictions to {out}" in capsys.readouterr().out
    assert_same_predictions(exported / "torch" / "pred.csv", exported / out)


def test_the_predictor_needs_no_torch_and_writes_the_submission(exported, tmp_path):
    env = without(("torch", "lightning", "torchvision", "nltk", "yaml", "jsonargparse"), tmp_path / "site")
    command = [sys.executable, "-m", "vlc.onnx_predict", "out/model.onnx", "photos", "--output", "free/pred.json"]
    done = subprocess.run([*command, "--submission", "free/sub.csv"], cwd=exported, env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    got = {row["file"]: row for row in json.loads((exported / "free" / "pred.json").read_text())}
    want = rows(exported / "torch" / "pred.csv")
    assert sorted(got) == sorted(want) and all(got[f]["label"] == want[f]["label"] for f in want)
    assert (exported / "free" / "sub.csv").read_text() == (exported / "torch" / "submission.csv").read_text()
    assert (exported / "free" / "pred.skipped.csv").read_text() == (exported / "torch" / "pred.skipped.csv").read_text()
    blocked = subprocess.run(
        command,
        cwd=exported,
        env=without(("torch", "onnxruntime"), tmp_path / "no_ort"),
        capture_output=True,
        text=True,
    )
    assert blocked.returncode == 2 and blocked.stderr.count("\n") == 1
    assert "vlc: error: python -m vlc.onnx_predict needs onnxruntime (not installed): pip install" in blocked.stderr


def test_export_mistakes_are_one_line_errors(exported, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(exported)
    checkpoint = torch.load(CKPT, weights_only=True)
    checkpoint["vlc_task"]["kind"] = "segmentation"
    torch.save(checkpoint, tmp_path / "other.ckpt")
    (tmp_path / "a_file").write_text("not a folder")
    cases = [
        (
            [f"--ckpt_path={tmp_path / 'other.ckpt'}", "--output=x.onnx"],
            "holds a model of kind 'segmentation'; vlc export takes classification and captioning checkpoints",
        ),
        ([f"--ckpt_path={CKPT}", f"--output={tmp_path / 'a_file' / 'model.onnx'}"], "--output: cannot write to"),
        ([f"--ckpt_path={CKPT}", "--output=model.pt"], "--output must end in .onnx"),
        (["--ckpt_path=best", "--output=x.onnx"], "last/best with --config CONFIG"),
        (["--output=x.onnx"], "the following arguments are required: --ckpt_path"),
    ]
    for args, message in cases:
        err = run_fails(capsys, ["export", *args])
        assert err.startswith("vlc: error: ") and message in err and err.count("\n") == 1, err
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if the export extra were not installed
    err = run_fails(capsys, ["export", f"--ckpt_path={CKPT}", "--output=x.onnx"])
    assert err == "vlc: error: vlc export needs onnxscript (not installed): pip install 'vlc[export]'\n"
    assert not Path("x.onnx").exists()


def test_best_with_the_config_finds_the_runs_best_checkpoint(exported, monkeypatch):
    from vlc.export.command import find_checkpoint

    monkeypatch.chdir(exported)
    found = Path(find_checkpoint("best", [str(CONFIGS / "demo" / "classify.yaml")]))
    assert found.parent == CKPT.parent and found.name.startswith("best-epoch00")


def test_predictor_mistakes_are_one_line_errors(exported, capsys, monkeypatch):
    monkeypatch.chdir(exported)
    for args, message in [
        (["missing.onnx", "photos"], "missing.onnx: no such file"),
        ([str(CKPT), "photos"], "not an ONNX model onnxruntime can run"),
        (["out/model.onnx", "nowhere"], "nowhere: no such folder"),
        (["out/model.onnx", "photos", "--output", "p.txt"], "--output must end in .csv or .json"),
        (["out/model.onnx", "photos", "--batch_size", "0"], "--batch_size: expected a value > 0, got 0"),
    ]:
        with pytest.raises(SystemExit) as stop:
            onnx_predict(args)
        err = capsys.readouterr().err
        assert stop.value.code == 2 and err.startswith("vlc: error: ") and message in err, err


def test_the_predictors_resize_is_vlcs():
    """The predictor's numpy resize gives torch's pixels (vlc.images.resize_batch), shrinking or growing: all but a
    few values within float32 rounding of .5, which land one apart."""
    rng = np.random.default_rng(0)
    sizes = [(200, 133, 64), (133, 200, 64), (150, 200, 224), (20, 30, 64), (500, 375, 64), (64, 64, 64), (1, 1, 64)]
    differ = total = 0
    for h, w, size in [*sizes, (4, 8, 64), (37, 41, 16), (200, 150, 299), (64, 48, 64), (112, 200, 64)]:
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        want = resize_batch(torch.from_numpy(image).permute(2, 0, 1)[None], size)[0].permute(1, 2, 0).numpy()
        got = resize_array(image, size)
        assert got.shape == want.shape == (size, size, 3) and got.dtype == np.uint8
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1, (h, w, size)
        differ, total = differ + int((got != want).sum()), total + got.size
    assert differ <= total * 1e-5  # 1 of 554,667 here


@pytest.mark.parametrize("ckpt", ["1769cae/classifier.ckpt", "1005777/captioner-attention.ckpt"])
def test_a_checkpoint_of_an_earlier_vlc_exports_to_what_it_predicted(ckpt, tmp_path, capsys):
    from vlc.cli import main

    legacy = REPO / "tests" / "legacy"
    main(["export", f"--ckpt_path={legacy / ckpt}", f"--output={tmp_path / 'model.onnx'}"])
    onnx_predict([str(tmp_path / "model.onnx"), str(legacy / "images"), "--output", str(tmp_path / "p.csv")])
    expected = {Path(f).name: row for f, row in rows((legacy / ckpt).with_suffix(".csv")).items()}
    got = {Path(f).name: row for f, row in rows(tmp_path / "p.csv").items()}
    assert sorted(got) == sorted(expected) and len(got) == 4
    for name, row in expected.items():
        if "label" in row:
            assert got[name]["label"] == row["label"], name
            assert abs(float(got[name]["probability"]) - float(row["probability"])) <= 1e-4, name
        else:
            assert got[name]["caption"] == row["caption"], name
            assert abs(float(got[name]["score"]) - float(row["score"])) <= 1e-4, name
