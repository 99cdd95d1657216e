"""Benchmark image shards: ``vlc fit`` epoch time and peak memory, streamed from shards vs the cache vs the files.

Writes a TinyImageNet30-layout folder of JPEG shapes scenes at 1x, 4x and 16x its size (``classifier.write_dataset``),
optimises each into shards (``vlc data optimize``), then runs one ``vlc fit`` per point and way of reading, in this
process, validation off: ``files`` (``data.cache: false``: every file decoded every epoch), ``cached`` (decoded once
into the in-memory cache) and ``streamed`` (``data.shards``: read from the chunks by index, decoded every epoch).
Each point reports the best epoch and the peak rise of the resident memory over the RSS before the run
(``common.PeakMemory``). The network is small by default (``--widths 16 32``), so that reading the data, not the
network, is what an epoch's time shows; ``--widths recipe`` trains the config's network.

    python benchmarks/shards.py                                    # 8 classes, 16 images each at 1x, 2 epochs
    python benchmarks/shards.py --per-class 64 --factors 1 4 16    # bigger (the shared machine: keep it short)
"""

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

from classifier import CNN_CONFIG, Recipe, vlc_fit, write_dataset
from common import PeakMemory, default_precision, quiet

from vlc.data.optimize import optimize

WAYS = {"files": ["--data.cache=false"], "cached": ["--data.cache=true"], "streamed": []}
"""How each way of reading is asked for (``streamed`` adds ``--data.shards``)."""


def compare(
    workdir: Path,
    fit: Callable[[Path, list[str]], list[float]],
    classes: int,
    per_class: int,
    factors: tuple[int, ...],
    image_size: int,
    epochs: int,
) -> dict[str, dict[str, list[float]]]:
    """Epoch seconds and peak memory rise (MiB) of each way of reading, at each factor of the data's size.

    Args:
        workdir: where the data, the shards and the runs go.
        fit: runs ``vlc fit`` on a data folder with more arguments; the epochs' seconds (``common.EpochTimer``).
        classes: classes of the data.
        per_class: training images per class at 1x.
        factors: the sizes, as multiples of 1x.
        image_size: side of the images.
        epochs: epochs of each run (the best is kept).

    Returns:
        ``{"seconds": {way: [per factor]}, "mib": {way: [per factor]}, "images": [per factor]}``.
    """
    seconds = {way: [] for way in WAYS}
    mib = {way: [] for way in WAYS}
    images = []
    for factor in factors:
        root = write_dataset(workdir / f"data{factor}", classes, per_class * factor, image_size)
        shards = workdir / f"shards{factor}"
        with quiet():
            images.append(optimize([str(CNN_CONFIG)], [f"--data.root={root}"], str(shards), "16MB")["train"])
        for way, args in WAYS.items():
            args = [*args, f"--data.shards={shards}"] if way == "streamed" else args
            with PeakMemory() as memory:
                times = fit(root, [*args, f"--trainer.max_epochs={epochs}", "--data.val_fraction=0.01"])
            seconds[way].append(min(times))
            mib[way].append(memory.rise / 2**20)
    return {"seconds": seconds, "mib": mib, "images": images}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--per-class", type=int, default=16, help="training images per class at 1x")
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run; the best is kept")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--widths", nargs="+", default=["16", "32"], help="the CNN's widths, or 'recipe'")
    args = parser.parse_args()

    widths = None if args.widths == ["recipe"] else list(map(int, args.widths))
    small = None if widths is None else {"widths": widths, "stem_width": widths[0]}
    recipe, precision = Recipe.read(backbone_overrides=small), default_precision()
    common = [f"--data.batch_size={args.batch}", f"--trainer.precision={precision}"]
    with tempfile.TemporaryDirectory(prefix="vlc-shards-") as folder:
        runs = iter(range(10**6))

        def fit(root: Path, extra: list[str]) -> list[float]:
            run = Path(folder) / "runs" / str(next(runs))
            run.mkdir(parents=True)
            return vlc_fit(recipe, root, run, "EpochTimer", [*common, *extra])

        fit(write_dataset(Path(folder) / "warmup", args.classes, 2, args.image_size), ["--trainer.max_steps=1"])
        result = compare(
            Path(folder), fit, args.classes, args.per_class, tuple(args.factors), args.image_size, args.epochs
        )
    network = "the recipe's network" if small is None else f"CNN widths {small['widths']}"
    print(f"{precision}, {network}, batch {args.batch}, {args.image_size}px JPEGs, best of {args.epochs} epochs")
    print(f"{'images':>8} | " + " | ".join(f"{way + ' s':>10} {way + ' MiB':>13}" for way in WAYS))
    for i, n in enumerate(result["images"]):
        cells = (f"{result['seconds'][way][i]:10.2f} {result['mib'][way][i]:13.0f}" for way in WAYS)
        print(f"{n:8d} | " + " | ".join(cells))


if __name__ == "__main__":
    main()
