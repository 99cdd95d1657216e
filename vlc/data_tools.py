"""``vlc data ...``: commands that prepare datasets on disk."""

import argparse

from vlc.data.datasets.build_tinyimagenet30 import build_tinyimagenet30


def main(argv: list[str]) -> None:
    """Parse and run ``vlc data <command>``."""
    parser = argparse.ArgumentParser(prog="vlc data", description="Prepare datasets on disk.")
    commands = parser.add_subparsers(dest="command", required=True)
    tin = commands.add_parser("tinyimagenet30", help="build TinyImageNet30 from the Tiny ImageNet-200 download")
    tin.add_argument("--source", required=True, help="the extracted tiny-imagenet-200/ folder")
    tin.add_argument("--out", required=True, help="the folder to create (class.txt, train_set/, test_set/)")
    tin.add_argument("--train-per-class", type=int, default=450, help="training images per class (default 450)")
    opt = commands.add_parser(
        "optimize",
        help="write a config's data as image shards (litdata's chunks) for --data.shards",
        epilog="Any --data.KEY=VALUE option of the config's data module follows, e.g. --data.root=DIR.",
    )
    opt.add_argument("--config", action="append", default=[], help="a config whose data: section is written")
    opt.add_argument("--out", required=True, help="the shard folder to create")
    opt.add_argument("--chunk-bytes", default="64MB", help="the size of each chunk (default 64MB)")
    args, options = parser.parse_known_args(argv)
    if args.command != "optimize" and options:
        parser.error(f"unrecognized arguments: {' '.join(options)}")
    if args.command == "optimize":
        from vlc.data.optimize import main as optimize

        optimize(args.config, options, args.out, args.chunk_bytes)
        return
    counts = build_tinyimagenet30(args.source, args.out, args.train_per_class)
    print(f"built TinyImageNet30 in {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
