"""Shared test helpers: tiny datasets in the real on-disk formats, and reading back TensorBoard event files."""

import csv
from pathlib import Path

import numpy as np
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from vlc.cli import main
from vlc.trainer import native_bf16_cpu

REPO = Path(__file__).resolve().parents[1]
BF16_FAST = native_bf16_cpu() is not None
"""Whether this CPU runs bfloat16 natively (AVX-512 BF16, AMX): without it bf16 is emulated, many times slower."""
FAST_PRECISION = "bf16-mixed" if BF16_FAST else "32-true"
"""What ``precision: auto`` picks on this CPU, named: for end-to-end runs whose cost matters."""
CONFIGS = REPO / "configs"
TINY_NET = [
    "--model.init_args.backbone.init_args.widths=[8, 16]",
    "--model.init_args.backbone.init_args.stem_width=8",
]
TINY_AIRBENCH = ["--model.init_args.backbone.init_args.widths=[8, 16]"]
"""The airbench configs' network shrunk for tests (two conv groups of 8 and 16 channels)."""


def tiny_classifier_fit(root: Path, *extra: str) -> list[str]:
    """``vlc fit`` arguments: the TinyImageNet30 CNN recipe shrunk for tests (TINY_NET, 8 images a batch, a quarter
    for validation, 1 epoch, no time budget, the fast precision) on ``root``; ``extra`` overrides any of them."""
    return [
        "fit",
        "--config",
        str(CONFIGS / "tinyimagenet30" / "cnn.yaml"),
        f"--data.root={root}",
        "--data.batch_size=8",
        "--data.val_fraction=0.25",
        "--trainer.max_epochs=1",
        "--trainer.max_time=null",
        "--trainer.enable_progress_bar=false",
        f"--trainer.precision={FAST_PRECISION}",
        *TINY_NET,
        *extra,
    ]


def tiny_captioner(images_dir: Path, captions_file: Path) -> list[str]:
    """CLI arguments: the COCO LSTM recipe shrunk for tests (vlc's CNN at 16 px, random init; a small LSTM) on
    COCO-format files, in float32."""
    return [
        "--config",
        str(CONFIGS / "coco" / "resnet50_lstm.yaml"),
        "--model.encoder=vlc.models.ResidualCNN",
        "--model.encoder.widths=[8, 16]",
        "--model.encoder.stem_width=8",
        "--model.encoder.image_size=16",
        "--model.decoder.hidden_dim=16",
        "--model.decoder.embed_dim=8",
        f"--data.images_dir={images_dir}",
        f"--data.captions_file={captions_file}",
        "--data.image_size=16",
        "--data.min_word_count=1",
        "--trainer.enable_progress_bar=false",
        "--trainer.precision=32-true",
    ]


def _image(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
    """A learnable image: class ``label`` sets the mean colour, noise makes each image different."""
    base = np.array([(label * 67) % 256, (label * 131) % 256, (label * 199) % 256], dtype=np.float32)
    return np.clip(base + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)


def write_tinyimagenet30(
    root: Path,
    classes: tuple[str, ...] = ("baboon", "banana", "bee"),
    per_class: int = 8,
    test_per_class: int = 2,
    size: int = 16,
    nested: bool = False,
) -> Path:
    """Write a small dataset in the coursework layout, with one greyscale JPEG; returns the labels CSV path."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    (root / "class.txt").write_text("".join(f"{i}\t{name}\n" for i, name in enumerate(classes)))
    train = root / "train_set" / "train_set" if nested else root / "train_set"
    test = root / "test_set" / "test_set" if nested else root / "test_set"
    test.mkdir(parents=True, exist_ok=True)
    rows = []
    for label, name in enumerate(classes):
        (train / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = Image.fromarray(_image(rng, label, size))
            if label == 0 and i == 0:
                image = image.convert("L")  # real TinyImageNet has greyscale JPEGs
            image.save(train / name / f"{name}_{i}.JPEG")
        for i in range(test_per_class):
            file = f"test_{label}_{i}.JPEG"
            Image.fromarray(_image(rng, label, size)).save(test / file)
            rows.append((file, label))
    labels = root / "test_labels.csv"
    with labels.open("w", newline="") as f:
        csv.writer(f).writerows([("Id", "Category"), *rows])
    return labels


def run_cli(capsys, args: list[str]) -> tuple[int, str]:
    """Run ``vlc ARGS`` in this process: its exit code and its stderr, which never holds a traceback."""
    try:
        main(args)
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def run_fails(capsys, args: list[str], code: int = 2) -> str:
    """The stderr of ``vlc ARGS``, which must stop with exit code ``code`` and no traceback."""
    actual, err = run_cli(capsys, args)
    assert actual == code
    return err


def events(logdir: Path) -> EventAccumulator:
    """Load every event file under ``logdir`` (one run folder) with nothing dropped."""
    files = sorted(Path(logdir).rglob("events.out.tfevents.*"))
    assert files, f"no event files under {logdir}"
    acc = EventAccumulator(str(files[0].parent), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    return acc.Reload()


def run_dirs(logs: Path) -> list[Path]:
    """The run (version) folders under ``logs``, oldest first."""
    return sorted({p.parent for p in Path(logs).rglob("events.out.tfevents.*")}, key=lambda p: p.stat().st_mtime)
