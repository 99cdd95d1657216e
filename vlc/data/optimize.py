"""``vlc data optimize``: a data module's items written as image shards (``vlc.data.datasets.shards``).

The data module of the config (``--config`` files, ``--data.*`` options) lists its items itself, as for training:
a classification module its labelled training set (split into train/val when read, as from the files) and its
labelled test set when it has one; a captioning module every usable image with its references (split by image when
read). Files go into the chunks as stored; images a module renders or unpickles (shapes, CIFAR-10's batches) as PNG.
"""

import json
from pathlib import Path

import yaml
from jsonargparse import Namespace

from vlc.checks import check_config_files, config_files
from vlc.cli.parser import VlcArgumentParser
from vlc.data.datasets.shards import INDEX, StoredItems, write_shards
from vlc.data.modules.base import ImageDataModule
from vlc.data.modules.captioning import CaptionDataModule
from vlc.data.modules.classification import ClassificationDataModule
from vlc.errors import UserError


def data_module(configs: list[str], options: list[str]) -> tuple[ImageDataModule, dict]:
    """The data module that the ``data:`` sections of ``configs`` and the ``--data.*`` ``options`` describe.

    Returns:
        The data module (reading its source, never shards) and its class path and options, for the index.
    """
    argv = [arg for path in configs for arg in ("--config", path)]
    check_config_files(argv)
    parser = VlcArgumentParser(prog="vlc data optimize")
    parser.add_subclass_arguments(ImageDataModule, "data", required=True)
    args = []
    for path in config_files(argv):
        section = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("data")
        if section is not None:
            args += ["--data", json.dumps(section)]
    if not args and not options:
        raise UserError("vlc data optimize: no data: section in the --config files and no --data option")
    config = parser.parse_args([*args, *options])
    if config.data.init_args.get("shards") is not None:  # the source is written, not shards read
        config = parser.parse_args([*args, *options, "--data.init_args.shards=null"])
    source = config.data.as_dict() if isinstance(config.data, Namespace) else dict(config.data)
    return parser.instantiate(config).data, source


def stored_items(datamodule: ImageDataModule, source: dict) -> tuple[dict[str, StoredItems], dict]:
    """The items of each split of ``datamodule`` and the index's content (task, names, labels or captions)."""
    if isinstance(datamodule, ClassificationDataModule):
        splits, meta = {}, {"task": "classification", "class_names": datamodule.source_class_names, "splits": {}}
        for split in ("train", "test"):
            samples = datamodule.labelled(split)
            if samples is not None and len(samples[1]):  # an empty split is left out, as a missing one
                splits[split] = StoredItems(samples[0], samples[1].tolist(), datamodule.reader)
                meta["splits"][split] = {"labels": samples[1].tolist()}
    elif isinstance(datamodule, CaptionDataModule):
        keys, references = datamodule.index  # every usable image (none: one line)
        images = datamodule.load_images(list(range(len(keys))))
        splits = {"images": StoredItems(images, None, datamodule.reader)}
        meta = {"task": "captioning", "splits": {"images": {"keys": keys, "references": references}}}
    else:
        raise UserError(f"vlc data optimize writes classification or captioning data, not {type(datamodule).__name__}")
    return splits, {**meta, "source": source}


def optimize(configs: list[str], options: list[str], out: str, chunk_bytes: str) -> dict[str, int]:
    """Write the config's data into the shard folder ``out``; the number of items of each split."""
    datamodule, source = data_module(configs, options)
    splits, meta = stored_items(datamodule, source)
    write_shards(out, splits, meta, chunk_bytes)
    return {split: len(items) for split, items in splits.items()}


def main(configs: list[str], options: list[str], out: str, chunk_bytes: str) -> None:
    """Run ``vlc data optimize`` and say what it wrote."""
    counts = optimize(configs, options, out, chunk_bytes)
    written = ", ".join(f"{split} {n}" for split, n in counts.items())
    print(f"wrote image shards to {out} ({written} items; {Path(out) / INDEX}); train on them with --data.shards {out}")
