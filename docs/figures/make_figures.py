"""``make figures``: the README's pictures, drawn from the runs that ``make demo`` leaves, into ``docs/figures/``.

    python docs/figures/make_figures.py [--root REPO] [--out docs/figures]

``REPO`` (default: the current folder) holds ``logs/`` and ``checkpoints/``. Every picture is drawn by vlc's own code
from what the runs left on disk; the images predicted are the shapes generator's, beyond the ones a run trained on
(``data.num_images`` of its ``config.yaml``), so the pictures are the same on every machine that has the same runs:

- ``training_curves.png``: the demo classifier's loss and accuracy per epoch (its event files, as ``vlc compare``
  reads them);
- ``confusion_matrix.png``: its confusion matrix on the shapes test split (``vlc predict`` of its best checkpoint,
  drawn by ``vlc.metrics.figures``, as in TensorBoard);
- ``gradcam.png``: Grad-CAM overlays of eight test images (``vlc predict --writer.explain true``);
- ``captions.png``: the demo captioner's captions of eight unseen scenes, and the attention strip of the first
  (``vlc predict --writer.explain true`` of the captioner);
- ``cifar10_compare.png``: the CIFAR-10 runs under ``logs/cifar10*`` (scratch / full / frozen), their validation
  accuracy per epoch and their test accuracy, from ``vlc compare``'s data; skipped, with a line saying so, when
  there are none.
"""

import argparse
import json
import sys
import tempfile
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from PIL import Image  # noqa: E402
from torchmetrics.classification import MulticlassConfusionMatrix  # noqa: E402

from vlc import compare  # noqa: E402
from vlc.checkpoints import best_in, newest_run  # noqa: E402
from vlc.cli import main as vlc  # noqa: E402
from vlc.data.datasets.shapes import CLASS_NAMES, captions, render, sample_scene  # noqa: E402
from vlc.errors import UserError  # noqa: E402
from vlc.explain.render import stack  # noqa: E402
from vlc.metrics.figures import confusion_matrix_figure  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CLASSIFIER, CAPTIONER = "demo-classify", "demo-caption"
GRID = 8
"""Images in the Grad-CAM and caption grids."""
ROLES = {"airbench": "scratch", "transfer_full": "full", "transfer_frozen": "frozen"}
"""The role of each CIFAR-10 config's runs (``configs/cifar10/``) in the comparison, by run name."""
COLOURS = 128
"""Pictures are stored with this many colours (a palette PNG): a few tens of KB each."""


def newest_log(root: Path, name: str) -> Path:
    """The newest ``logs/<name>/version_N`` folder.

    Raises:
        UserError: there is none (``make demo`` not run).
    """
    runs = sorted((root / "logs" / name).glob("version_*"), key=compare.natural_key)
    if not runs:
        raise UserError(f"{root / 'logs' / name}: no runs; run `make demo` first (or give --root)")
    return runs[-1]


def best_checkpoint(root: Path, name: str) -> Path:
    """The best checkpoint of the newest run under ``checkpoints/<name>``."""
    run = newest_run(root / "checkpoints" / name)
    best = best_in(run) if run else None
    if best is None:
        raise UserError(f"{root / 'checkpoints' / name}: no checkpoint; run `make demo` first (or give --root)")
    return best


def data_options(log: Path) -> dict:
    """The run's ``data.init_args`` (its ``config.yaml``)."""
    return yaml.safe_load((log / "config.yaml").read_text())["data"].get("init_args", {})


def save(picture: Image.Image | plt.Figure, path: Path) -> None:
    """Write ``picture`` (a PIL image or a matplotlib figure) as a palette PNG and say so."""
    if isinstance(picture, plt.Figure):
        picture.canvas.draw()
        image = Image.fromarray(np.asarray(picture.canvas.buffer_rgba())[..., :3])
        plt.close(picture)
    else:
        image = picture.convert("RGB")
    image.quantize(COLOURS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
    print(f"wrote {path} ({image.width}x{image.height}, {path.stat().st_size // 1024} KB)")


def training_curves(log: Path) -> plt.Figure:
    """Loss and accuracy per epoch, training and validation, of one classifier run."""
    values = compare.scalars(log)
    fig, (loss, acc) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=100)
    for ax, metric in ((loss, "loss"), (acc, "acc")):
        for split, style in (("train", "--"), ("val", "-")):
            series = values.get(f"{split}/{metric}_epoch" if split == "train" else f"{split}/{metric}", [])
            epochs = range(1, len(series) + 1)
            ax.plot(epochs, series, style, marker="o", label="training" if split == "train" else "validation")
        ax.set_xlabel("epoch")
        ax.set_title({"loss": "loss", "acc": "accuracy"}[metric])
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{log.parent.name}: {values.get('val/acc', [float('nan')])[-1]:.3f} validation accuracy")
    fig.tight_layout()
    return fig


def write_images(folder: Path, start: int, count: int, num_shapes: int, seed: int, step: int = 1) -> dict[str, int]:
    """Shapes images ``start, start + step, ...`` as PNGs in ``folder``: ``file name -> index``."""
    folder.mkdir(parents=True)
    names = {}
    for index in range(start, start + count * step, step):
        name = f"{index:06d}.png"
        Image.fromarray(render(sample_scene(seed, index, num_shapes), seed, index)).save(folder / name)
        names[name] = index
    return names


def predict(config: str, checkpoint: Path, folder: Path, output: Path, *extra: str) -> list[dict]:
    """``vlc predict`` of ``folder`` into ``output`` (JSON): its rows."""
    args = [
        "predict",
        f"--config={REPO / 'configs' / 'predict' / config}",
        f"--ckpt_path={checkpoint}",
        f"--data.predict_dir={folder}",
        f"--writer.output={output}",
        "--trainer.enable_progress_bar=false",
        *extra,
    ]
    vlc(args)
    return json.loads(output.read_text())


def confusion(rows: list[dict], truth: dict[str, int], options: dict) -> plt.Figure:
    """The confusion matrix of the predictions ``rows`` against the shapes' labels, drawn as TensorBoard's."""
    metric = MulticlassConfusionMatrix(num_classes=len(CLASS_NAMES))
    predicted = torch.tensor([row["class_index"] for row in rows])
    labels = [sample_scene(options.get("generator_seed", 0), truth[Path(row["file"]).name])[0].label for row in rows]
    metric.update(predicted, torch.tensor(labels))
    return confusion_matrix_figure(metric, CLASS_NAMES)


def overlays(rows: list[dict], output: Path, columns: int) -> Image.Image:
    """The overlay PNGs the prediction file names, ``columns`` to a row."""
    pictures = [Image.open(output.parent / row["overlay"]).convert("RGB") for row in rows if row.get("overlay")]
    if not pictures:
        raise UserError(f"{output}: no overlays written")
    lines = [pictures[i : i + columns] for i in range(0, len(pictures), columns)]
    return stack([side_by_side(line) for line in lines])


def side_by_side(pictures: list[Image.Image]) -> Image.Image:
    """``pictures`` left to right on white, top-aligned."""
    out = Image.new("RGB", (sum(p.width for p in pictures), max(p.height for p in pictures)), "white")
    left = 0
    for p in pictures:
        out.paste(p, (left, 0))
        left += p.width
    return out


def caption_grid(rows: list[dict], folder: Path, truth: dict[str, int], options: dict, width: int) -> plt.Figure:
    """The scenes with their generated captions (green: one of the references word for word, else orange)."""
    columns = len(rows)
    fig, axes = plt.subplots(1, columns, figsize=(width / 100, width / 100 / columns + 0.9), dpi=100, squeeze=False)
    for ax, row in zip(axes.flat, rows):
        name = Path(row["file"]).name
        scene = sample_scene(options.get("generator_seed", 0), truth[name], options.get("num_shapes", 2))
        exact = row["caption"] in captions(scene)
        ax.imshow(Image.open(folder / name))
        ax.set_title("\n".join(textwrap.wrap(row["caption"], 24)), fontsize=10, color="green" if exact else "C1")
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle("captions of unseen scenes (green: word for word one of the true captions; orange: not)", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def cifar10_runs(root: Path) -> list[Path]:
    """The runs under ``logs/cifar10*`` (``vlc compare``'s finding), none when there are none."""
    runs = []
    for folder in sorted((root / "logs").glob("cifar10*")):
        try:
            runs += compare.find_runs(str(folder))
        except UserError:
            continue
    return runs


def cifar10_compare(root: Path, runs: list[Path]) -> plt.Figure:
    """Validation accuracy per epoch and the test accuracy of each CIFAR-10 run (``vlc compare``'s rows)."""
    fig, (curves, bars) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=100, gridspec_kw={"width_ratios": [3, 2]})
    names, tests = [], []
    for run in runs:
        row, values = compare.summarize(run), compare.scalars(run)
        name = str(run.relative_to(root / "logs"))
        name = f"{ROLES.get(run.parent.name, run.parent.name)}: {name}"
        accuracy = values.get("val/acc", [])
        curves.plot(range(1, len(accuracy) + 1), accuracy, marker="o", label=name)
        names.append(name)
        tests.append(row.get("test_acc") or 0.0)
    curves.set_xlabel("epoch")
    curves.set_title("validation accuracy")
    curves.grid(alpha=0.3)
    curves.legend(fontsize=8)
    positions = range(len(names))
    bars.barh(positions, tests, color=[f"C{i}" for i in positions])
    for y, value in zip(positions, tests):
        bars.text(value, y, f" {value:.3f}" if value else " no test run", va="center")
    bars.set_yticks(list(positions), names, fontsize=8)
    bars.invert_yaxis()
    bars.set_xlim(0, 1.15)
    bars.set_title("test accuracy (vlc test)")
    fig.suptitle("CIFAR-10: from scratch, fine-tuned (full), frozen backbone (vlc compare logs/cifar10)")
    fig.tight_layout()
    return fig


def classifier_figures(root: Path, out: Path, work: Path) -> None:
    """The demo classifier's curves, confusion matrix and Grad-CAM grid; ``work``: a scratch folder."""
    log, checkpoint = newest_log(root, CLASSIFIER), best_checkpoint(root, CLASSIFIER)
    save(training_curves(log), out / "training_curves.png")
    options = data_options(log)
    start, seed = options.get("num_images", 6000), options.get("generator_seed", 0)
    shapes = options.get("num_shapes", 1)
    size = f"--data.image_size={options.get('image_size') or 64}"
    test = write_images(work / "test", start, options.get("num_test", 1500), shapes, seed)
    rows = predict("classify.yaml", checkpoint, work / "test", work / "test.json", size)
    save(confusion(rows, test, options), out / "confusion_matrix.png")
    step = len(CLASS_NAMES) // 4 + 1  # 8: eight different classes
    write_images(work / "gradcam", start, GRID, shapes, seed, step=step)
    rows = predict("classify.yaml", checkpoint, work / "gradcam", work / "gradcam.json", size, "--writer.explain=true")
    save(overlays(rows, work / "gradcam.json", columns=4), out / "gradcam.png")


def captioner_figures(root: Path, out: Path, work: Path) -> None:
    """The demo captioner's captions of unseen scenes above the attention strip of the first."""
    log, checkpoint = newest_log(root, CAPTIONER), best_checkpoint(root, CAPTIONER)
    options = data_options(log)
    model = yaml.safe_load((log / "config.yaml").read_text())["model"]["init_args"]
    size = model.get("encoder", {}).get("init_args", {}).get("image_size") or 64
    start = options.get("num_images", 6000)
    scenes = write_images(work / "scenes", start, GRID, options.get("num_shapes", 2), options.get("generator_seed", 0))
    output = work / "captions.json"
    rows = predict(
        "caption.yaml", checkpoint, work / "scenes", output, f"--data.image_size={size}", "--writer.explain=true"
    )
    strip = Image.open(output.parent / rows[0]["overlay"]).convert("RGB")
    grid = caption_grid(rows, work / "scenes", scenes, options, width=max(strip.width, 800))
    grid.canvas.draw()
    picture = Image.fromarray(np.asarray(grid.canvas.buffer_rgba())[..., :3])
    plt.close(grid)
    save(stack([picture, strip]), out / "captions.png")


def main(argv: list[str] | None = None) -> int:
    """Draw every picture; 0 when done, 2 (with one line) when a demo run is missing."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], prog="make_figures.py")
    parser.add_argument("--root", default=".", help="the folder holding logs/ and checkpoints/ (default: .)")
    parser.add_argument("--out", default=str(REPO / "docs" / "figures"), help="where the PNGs go")
    args = parser.parse_args(argv)
    root, out = Path(args.root).resolve(), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        runs = cifar10_runs(root)
        if runs:
            save(cifar10_compare(root, runs), out / "cifar10_compare.png")
        else:
            print(f"skipped cifar10_compare.png: no runs under {root / 'logs'}/cifar10* (train them: docs/results.md)")
        with tempfile.TemporaryDirectory() as tmp:
            classifier_figures(root, out, Path(tmp) / "classify")
            captioner_figures(root, out, Path(tmp) / "caption")
    except UserError as err:
        print(f"make_figures: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
