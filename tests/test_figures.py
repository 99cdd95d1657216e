"""``make figures`` (docs/figures/make_figures.py) end to end, on tiny demo runs it trains into a temporary folder."""

import os
import shutil
import sys

import numpy as np
import pytest
from helpers import CONFIGS, FAST_PRECISION, REPO
from PIL import Image

from vlc.cli import main as vlc

sys.path.append(str(REPO / "docs" / "figures"))

import make_figures  # noqa: E402

QUIET = ["--trainer.max_epochs=1", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
TINY_CLASSIFIER = [
    "fit",
    f"--config={CONFIGS / 'demo' / 'classify.yaml'}",
    "--model.init_args.backbone.init_args.widths=[8, 16]",
    "--model.init_args.backbone.init_args.stem_width=8",
    "--data.num_images=120",
    "--data.num_test=30",
    "--data.batch_size=32",
    f"--trainer.precision={FAST_PRECISION}",
    *QUIET,
]
TINY_CAPTIONER = [
    "fit",
    f"--config={CONFIGS / 'demo' / 'caption.yaml'}",
    "--model.encoder.widths=[8, 16]",
    "--model.encoder.stem_width=8",
    "--model.encoder.image_size=32",
    "--model.decoder.hidden_dim=16",
    "--model.decoder.embed_dim=8",
    "--model.decoder.attention_dim=8",
    "--model.scoring.num_samples=2",
    "--data.num_images=64",
    "--data.batch_size=32",
    "--trainer.precision=32-true",
    *QUIET,
]
PICTURES = ["training_curves", "confusion_matrix", "gradcam", "captions", "cifar10_compare"]


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    """A folder with ``logs/`` and ``checkpoints/`` of a tiny demo classifier and captioner, and one "CIFAR-10" run
    (a copy of the classifier's logs, named as ``configs/cifar10/airbench.yaml`` names its runs)."""
    root = tmp_path_factory.mktemp("demo")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.delenv("PL_GLOBAL_SEED", raising=False)  # restored afterwards: vlc fit seeds the process
            vlc(TINY_CLASSIFIER)
            vlc(TINY_CAPTIONER)
    finally:
        os.chdir(cwd)
    shutil.copytree(root / "logs" / "demo-classify", root / "logs" / "cifar10" / "airbench")
    return root


def test_make_figures_writes_every_picture_from_the_runs(demo_root, tmp_path, capsys):
    assert make_figures.main(["--root", str(demo_root), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in PICTURES:
        path = tmp_path / f"{name}.png"
        assert f"wrote {path}" in out
        assert path.stat().st_size < 150_000
        pixels = np.asarray(Image.open(path).convert("L"), dtype=np.float32)
        assert pixels.std() > 10, name  # not blank
    gradcam = Image.open(tmp_path / "gradcam.png")
    assert gradcam.size == (4 * 2 * 160, 2 * (160 + 24))  # eight overlays (image, heat map) four to a row


def test_the_comparison_is_skipped_without_cifar10_runs_and_a_missing_demo_is_one_line(demo_root, tmp_path, capsys):
    root = tmp_path / "root"
    shutil.copytree(demo_root / "logs", root / "logs", ignore=shutil.ignore_patterns("cifar10"))
    assert make_figures.main(["--root", str(root), "--out", str(tmp_path / "out")]) == 2  # no checkpoints
    captured = capsys.readouterr()
    assert "skipped cifar10_compare.png: no runs" in captured.out
    assert not (tmp_path / "out" / "cifar10_compare.png").exists()
    err = captured.err.strip().splitlines()
    assert err == [
        f"make_figures: error: {root / 'checkpoints' / 'demo-classify'}: no checkpoint; run `make demo` first "
        "(or give --root)"
    ]
