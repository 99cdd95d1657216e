"""The training compute of a classifier config: FLOPs per image x images x epochs, plus the evaluation passes.

    python benchmarks/compute.py --config configs/cifar10/airbench.yaml --images 45000 --epochs 10
    python benchmarks/compute.py --config configs/cifar10/airbench.yaml --images 50000 --epochs 9.9 \\
        --val-images 0 --test-images 10000 --test-views 6       # airbench94's run: 0.36 PFLOP in its paper

The FLOPs of one image are counted by ``torch.utils.flop_counter.FlopCounterMode`` on the config's network at its
input size (convolutions and matrix products, 2 per multiply-add; a training step is forward and backward, an
evaluation view a forward without gradients). Validation runs every epoch on ``--val-images`` (default: the share
``data.val_fraction`` of the config holds out beside ``--images``) with the views the fit validates with (2 with
``flip_average``); ``--test-images`` are scored once after the fit. The machine's matrix-multiply peaks (bfloat16,
float32) are printed too, with the time the compute would take at each: so that results from different machines
compare. Reads the config; trains nothing.
"""

import argparse
import sys
from pathlib import Path

import torch
from classifier import Recipe, forward_flops, matmul_peak, training_flops

from vlc.data.augment import evaluation_views

COUNT_BATCH = 4
"""Images of the batch the FLOPs are counted on (the count per image does not depend on it)."""


def compute(
    recipe: Recipe,
    images: int,
    epochs: float,
    val_images: int | None = None,
    test_images: int = 0,
    test_views: int | None = None,
) -> dict:
    """The FLOPs of a run of ``recipe``: training, validation (every epoch) and test, and their total.

    Args:
        recipe: the config's network and data options.
        images: training images per epoch.
        epochs: epochs (fractions allowed).
        val_images: validation images per epoch (None: ``images`` x val_fraction / (1 - val_fraction)).
        test_images: images scored once after the fit.
        test_views: test-time views per test image (None: the validation views).
    """
    size, classes = recipe.input_size(), recipe.num_classes
    if val_images is None:
        fraction = float(recipe.data.get("val_fraction", 0.1))
        val_images = round(images * fraction / (1 - fraction))
    views = len(evaluation_views(torch.zeros(1, 3, 4, 4), recipe.model.get("flip_average", False), False))
    train = training_flops(recipe, classes, COUNT_BATCH, size)
    forward = forward_flops(recipe, classes, COUNT_BATCH, size)
    parts = {
        "training": train * images * epochs,
        "validation": forward * val_images * views * epochs,
        "test": forward * test_images * (views if test_views is None else test_views),
    }
    return {
        "training_flops_per_image": train,
        "forward_flops_per_view": forward,
        "image_size": size,
        "validation_images": val_images,
        "validation_views": views,
        **parts,
        "total": sum(parts.values()),
    }


def flops_text(flops: float) -> str:
    """``0.365 PFLOP``, ``12.3 TFLOP`` or ``4.56 GFLOP``."""
    if flops >= 1e14:
        return f"{flops / 1e15:#.3g} PFLOP"  # 0.100, not 0.1: three digits
    if flops >= 1e11:
        return f"{flops / 1e12:.3g} TFLOP"
    return f"{flops / 1e9:.3g} GFLOP"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        "compute.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, required=True, help="a classifier config (configs/...yaml)")
    parser.add_argument("--images", type=int, required=True, help="training images per epoch")
    parser.add_argument("--epochs", type=float, required=True, help="epochs (fractions allowed)")
    parser.add_argument("--val-images", type=int, help="validation images per epoch (default: from val_fraction)")
    parser.add_argument("--test-images", type=int, default=0, help="images scored once after the fit (default 0)")
    parser.add_argument("--test-views", type=int, help="test-time views per test image (default: validation's)")
    parser.add_argument("--matmul", type=int, default=1024, help="side of the matrices of the peak (0: no peak)")
    args = parser.parse_args(argv)
    for name in ("images", "epochs", "val_images", "test_images", "test_views", "matmul"):
        value = getattr(args, name)
        if value is not None and value < 0:
            parser.error(f"--{name.replace('_', '-')} {value}: expected a number >= 0")
    if not args.config.is_file():
        parser.error(f"--config {args.config}: no such file")
    try:
        args.recipe = Recipe.read(args.config)
    except (ValueError, KeyError, AttributeError) as err:
        parser.error(f"--config {err}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Print the compute of ``--config`` for ``--images`` and ``--epochs``, then the machine's matmul peaks."""
    args = parse_args(argv)
    recipe = args.recipe
    r = compute(recipe, args.images, args.epochs, args.val_images, args.test_images, args.test_views)
    print(f"{args.config}: {recipe.family} at {r['image_size']} px")
    print(
        f"  training:   {args.images:,} images x {args.epochs:g} epochs x "
        f"{r['training_flops_per_image'] / 1e9:.3g} GFLOP (forward+backward) = {flops_text(r['training'])}"
    )
    print(
        f"  validation: {r['validation_images']:,} images x {r['validation_views']} views x {args.epochs:g} epochs x "
        f"{r['forward_flops_per_view'] / 1e9:.3g} GFLOP (forward) = {flops_text(r['validation'])}"
    )
    if args.test_images:
        views = args.test_views if args.test_views is not None else r["validation_views"]
        print(f"  test:       {args.test_images:,} images x {views} views = {flops_text(r['test'])}")
    print(f"total: {flops_text(r['total'])}")
    if args.matmul:
        for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
            peak = matmul_peak(args.matmul, dtype, 3)
            print(
                f"matmul peak {name} ({args.matmul}x{args.matmul} torch.mm, {torch.get_num_threads()} threads): "
                f"{peak / 1e9:,.0f} GFLOP/s; the compute above takes {r['total'] / peak:,.0f} s at it"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
