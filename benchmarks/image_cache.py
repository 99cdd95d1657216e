"""Benchmark the classification image cache: the header check's cost, the cache build's time and its memory peak.

Sets up a TinyImageNet30-layout folder for ``fit`` (header check of every file, then the cache build at
``--image-size``) and reports the seconds of each and how far the process's peak resident memory rose during the
setup, against the final size of the cache (the cache is allocated once at its final size, so the peak should stay
close to it). The rise is measured as ``common.PeakMemory`` measures every benchmark's memory.

    python benchmarks/image_cache.py /tmp/vlc-data/tinyimagenet30                   # 64x64, as trained
    python benchmarks/image_cache.py /tmp/vlc-data/tinyimagenet30 --image-size 224  # 2 GB of cache
"""

import argparse
import time

from common import PeakMemory

from vlc.data import TinyImageNet30DataModule
from vlc.data.bad_images import check_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="a TinyImageNet30 folder (class.txt, train_set/)")
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args()

    dm = TinyImageNet30DataModule(root=args.root, image_size=args.image_size)
    paths, _ = dm.labelled("train")
    start = time.perf_counter()
    check_files(paths, dm.reader, dm.bad_images)
    header_s = time.perf_counter() - start

    with PeakMemory() as memory:
        start = time.perf_counter()
        dm.setup("fit")  # the header check again, then the cache build
        setup_s = time.perf_counter() - start
    rise = memory.rise
    print(f"{len(paths)} files: header check {header_s:.2f} s; setup (check + cache build) {setup_s:.1f} s")
    cache = getattr(dm.datasets["train"], "images", None)
    if cache is None:
        print(f"no cache: it would not fit in memory (peak memory rose {rise / 2**20:.0f} MiB)")
        return
    size, side = cache.numel() * cache.element_size(), args.image_size
    print(f"cache {size / 2**20:.0f} MiB at {side}x{side}; peak memory rose {rise / 2**20:.0f} MiB")
    print(f"peak rise / cache size = {rise / size:.2f}")


if __name__ == "__main__":
    main()
