"""Benchmark the frozen-encoder feature cache: caption training epochs with and without it.

A ResNet50 encoder with RANDOM weights (the timings measure cost, not caption quality), frozen, feeding an LSTM
decoder (embedding 256, hidden 512), trained for a few epochs on shapes scenes resized to 224x224. With
``feature_cache: memory`` the first epoch encodes every image once and later epochs read the cached features;
with ``off`` every epoch runs the ResNet50 again; ``disk`` reads them from a memory-mapped file. Validation is
off, so an epoch is training steps only.

    python benchmarks/feature_cache.py                    # 256 images, batch 64, 3 epochs, bf16-mixed
    python benchmarks/feature_cache.py --images 64 --precision 32-true
    python benchmarks/feature_cache.py --caches off memory disk
    python benchmarks/feature_cache.py --backbone cnn --image-size 64   # vlc's CNN, seconds instead of minutes
"""

import argparse
import tempfile
from functools import partial

import lightning as L
import torch
from common import EpochTimer

from vlc.data.modules.shapes import ShapesCaptionsDataModule
from vlc.models import ResidualCNN, TorchvisionBackbone
from vlc.tasks.captioner import ImageCaptioner


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256, help="training images")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--precision", default="bf16-mixed")
    parser.add_argument("--caches", nargs="+", default=["off", "memory"], choices=["off", "memory", "disk"])
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    return parser.parse_args()


def epoch_times(
    cache: str,
    images: int = 256,
    batch_size: int = 64,
    epochs: int = 3,
    backbone: str = "resnet50",
    image_size: int = 224,
    precision: str = "bf16-mixed",
    backbone_args: dict | None = None,
) -> list[float]:
    """Seconds of each training epoch of a captioner whose frozen encoder uses ``feature_cache=cache``.

    Args:
        cache: ``off``, ``memory`` or ``disk``.
        images: training images (shapes scenes rendered at 64x64, resized to ``image_size``).
        batch_size: images per batch.
        epochs: training epochs (no validation).
        backbone: ``cnn`` (``ResidualCNN``) or a ``TorchvisionBackbone`` name (random weights: never downloaded).
        image_size: the side the images are resized to.
        precision: Lightning's precision.
        backbone_args: more arguments of the backbone's family (``widths``, ``stem_width`` of ``cnn``).
    """
    family = ResidualCNN if backbone == "cnn" else partial(TorchvisionBackbone, backbone)
    L.seed_everything(0, verbose=False)
    data = ShapesCaptionsDataModule(num_images=images, split=(1.0, 0.0, 0.0), image_size=image_size)
    data.batch_size = batch_size
    model = ImageCaptioner(
        encoder=partial(family, image_size=image_size, **(backbone_args or {})),
        freeze_encoder=True,
        feature_cache=cache,
        vocab=data.vocab,
    )
    timer = EpochTimer()
    with tempfile.TemporaryDirectory(prefix="feature_cache_benchmark_") as root:  # where a disk cache goes
        trainer = L.Trainer(
            max_epochs=epochs,
            precision=precision,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[timer],
            default_root_dir=root,
        )
        trainer.fit(model, data)
    return timer.times


def after_first(times: list[float]) -> float:
    """The fastest epoch after the first (the first epoch fills the cache)."""
    return min(times[1:])


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    size = args.image_size
    print(f"{args.backbone} (random weights, frozen) + LSTM; {args.images} images at {size}x{size}, ", end="")
    print(f"batch {args.batch_size}")
    print(f"{args.epochs} epochs, {args.precision}, {torch.get_num_threads()} threads")
    results = {
        cache: epoch_times(cache, args.images, args.batch_size, args.epochs, args.backbone, size, args.precision)
        for cache in args.caches
    }
    for cache, times in results.items():
        print(f"feature_cache={cache:6s} epoch seconds: " + ", ".join(f"{t:.2f}" for t in times))
    later = {cache: after_first(times) for cache, times in results.items()}
    print("fastest epoch after the first: " + ", ".join(f"{cache} {t:.3f} s" for cache, t in later.items()))
    if "off" in later:
        for cache in [c for c in later if c != "off"]:
            print(f"speed-up with {cache}: {later['off'] / later[cache]:.1f}x")


if __name__ == "__main__":
    main()
