"""Image shards: a dataset written as litdata's chunks by ``vlc data optimize``, read back item by item.

A shard folder holds one litdata dataset per split and vlc's own small index beside them::

    DIR/vlc_shards.json     task, class names, per split its size, labels (or image keys and reference captions)
                            and the files that failed the header check when written, with their reasons, and the
                            source (data class and options): all a data module needs before reading a chunk
    DIR/<split>/            litdata's index.json and chunk-*.bin: items {"index": position, "file": name,
                            "image": the file's bytes as stored, "error": why they could not be stored, "label": int}

Items are read by index (``StreamingDataset.__getitem__``) under vlc's own seeded sampler (``vlc.data.loading``), not
through litdata's loader, whose state a resumed Trainer does not restore (litdata#775), so that resumed runs stay
exact and DDP processes agree. The bytes are decoded by vlc's one reader (``vlc.images.ImageReader``): a damaged
image in the shards is reported as the same file would be, those the header check found (at writing) before
training, the others in the first pass. litdata is imported only when shards are used.
"""

import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from vlc.data.bad_images import BadImages
from vlc.data.datasets.images import FileImages
from vlc.errors import UserError
from vlc.images import EncodedImage, ImageReader

INDEX = "vlc_shards.json"
"""The name of vlc's index beside the chunks."""
FORMAT = 1
"""The version of the layout above, written into the index."""
INSTALL = "pip install 'vlc[stream]'"


def litdata():
    """The ``litdata`` module, imported now (offline: its version check is switched off).

    Raises:
        UserError: litdata is not installed.
    """
    os.environ.setdefault("LITDATA_DISABLE_VERSION_CHECK", "1")
    try:
        import litdata as ld
    except ImportError:
        raise UserError(f"image shards (data.shards, vlc data optimize) need litdata: {INSTALL}") from None
    return ld


@dataclass(frozen=True)
class ShardIndex:
    """What ``vlc_shards.json`` says about a shard folder.

    Args:
        folder: the shard folder.
        task: ``classification`` or ``captioning``.
        class_names: the class names in label order (classification).
        splits: per split (``train``, ``test``; captioning: ``images``) its ``count``, ``labels`` (classification)
            or ``keys`` and ``references`` (captioning), and ``bad``: ``{position: [file, reason]}`` of the files
            that failed the header check when written.
        source: the data class and options the shards were written from.
    """

    folder: str
    task: str
    class_names: list[str]
    splits: dict[str, dict]
    source: dict

    def images(self, split: str, positions: Sequence[int] | None = None) -> "ShardImages":
        """The images of ``split`` (at ``positions`` of it, all by default)."""
        bad = {int(i): tuple(entry) for i, entry in self.splits[split].get("bad", {}).items()}
        return ShardImages(self.folder, split, self.splits[split]["count"], positions, bad)


def read_index(folder: str | Path, task: str) -> ShardIndex:
    """The index of the shard folder ``folder``, checked to hold ``task`` data.

    Raises:
        UserError: ``folder`` is not a shard folder of vlc's format, or holds another task's data.
    """
    path = Path(folder) / INDEX
    if "://" in str(folder):
        raise UserError(f"data.shards: {folder}: object-store paths are not read yet; copy the folder locally first")
    if not path.is_file():
        raise UserError(f"data.shards: {folder} has no {INDEX}; expected a folder written by vlc data optimize")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UserError(f"data.shards: {path}: not readable as JSON ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"data.shards: {path}: not vlc's shard index of format {FORMAT}")
    if meta["task"] != task:
        raise UserError(f"data.shards: {folder} holds {meta['task']} data; this data module needs {task} data")
    return ShardIndex(str(folder), meta["task"], meta.get("class_names", []), meta["splits"], meta["source"])


class ShardImages(Sequence):
    """The images of one split of a shard folder, each read from its chunk when asked for, as an ``EncodedImage``.

    A sequence like a list of image files (``vlc.data.datasets.images.FileImages`` and the caption datasets read
    either), named ``DIR/<split>/<file>`` in messages. The litdata dataset is opened in each process that reads.

    Args:
        folder: the shard folder.
        split: the split's sub-folder.
        size: the split's size.
        positions: the items of the split this sequence holds, in order (all by default).
        bad: ``{item: (file, reason)}`` of the files of the split that failed the header check when written.
    """

    def __init__(
        self,
        folder: str,
        split: str,
        size: int,
        positions: Sequence[int] | None = None,
        bad: dict[int, tuple[str, str]] | None = None,
    ) -> None:
        self.folder, self.split, self.size, self.bad = folder, split, size, bad or {}
        self.positions = list(range(size)) if positions is None else list(positions)
        self._dataset, self._pid = None, None

    def subset(self, positions: Sequence[int]) -> "ShardImages":
        """The images at ``positions`` of this sequence."""
        return ShardImages(self.folder, self.split, self.size, [self.positions[i] for i in positions], self.bad)

    def checked(self, bad_images: BadImages) -> list[int]:
        """Positions of the images that passed the header check when written; the others go to ``bad_images``.

        What ``vlc.data.bad_images.check_files`` is for files, without reading a chunk.
        """
        kept = []
        for i, position in enumerate(self.positions):
            if position in self.bad:
                file, reason = self.bad[position]
                bad_images.add(self.name(file), reason)
            else:
                kept.append(i)
        return kept

    def name(self, file: str) -> str:
        """How messages name the image ``file`` of the split: ``DIR/<split>/<file>``."""
        return f"{self.folder}/{self.split}/{file}"

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> EncodedImage:
        position = self.positions[i]
        item = self.dataset()[position]
        if item["index"] != position:
            raise UserError(f"data.shards: {self.folder}/{self.split}: item {position} holds item {item['index']}")
        return EncodedImage(self.name(item["file"]), bytes(item["image"]), item["error"] or None)

    def dataset(self):
        """The split's ``litdata.StreamingDataset``, opened on first use in each process (checked against the index)."""
        if self._dataset is None or self._pid != os.getpid():  # a forked loader worker opens its own
            folder = os.path.join(self.folder, self.split)
            # its length is this DDP process's share (litdata's own split), its items are read by global index;
            # drop_last only quiets its warning that a share may be uneven (vlc's sampler pads the shares)
            self._dataset, self._pid = litdata().StreamingDataset(folder, drop_last=True), os.getpid()
            with open(os.path.join(folder, "index.json"), encoding="utf-8") as file:
                stored = sum(chunk["chunk_size"] for chunk in json.load(file)["chunks"])
            if stored != self.size:
                raise UserError(
                    f"data.shards: {folder} holds {stored} items, {INDEX} says {self.size}; write the folder again "
                    "with vlc data optimize"
                )
        return self._dataset

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_dataset": None}  # worker processes open their own


class Shards(FileImages):
    """A classification split of a shard folder as a plain ``Dataset`` of ``{"images", "labels", "index"}`` samples.

    Args:
        folder: the shard folder (``vlc data optimize``'s output).
        split: ``train`` or ``test``.
        image_size: resize the images to this size.
    """

    def __init__(self, folder: str | Path, split: str = "train", image_size: int | None = None) -> None:
        index = read_index(folder, "classification")
        if split not in index.splits:
            raise UserError(f"{folder} has no {split} split (it has {', '.join(index.splits)})")
        self.class_names = index.class_names
        super().__init__(index.images(split), torch.tensor(index.splits[split]["labels"]), ImageReader(image_size))


# -- writing ---------------------------------------------------------------------------------------------------
class StoredItems:
    """The items of one split as they go into the chunks: image files as stored, tensors as PNG (lossless).

    Args:
        images: image files or a ``(N, 3, H, W)`` uint8 tensor.
        labels: per image its label (classification), or None.
        reader: checks each file's header now (:attr:`bad`: ``{position: [file, reason]}``).
    """

    def __init__(self, images: Sequence[Path] | torch.Tensor, labels: Sequence[int] | None, reader: ImageReader):
        self.images, self.labels, self.bad = images, labels, {}
        if isinstance(images, torch.Tensor) or not len(images):
            return
        self.root = os.path.commonpath([os.path.abspath(p.parent) for p in images])
        for i, path in enumerate(images):
            if (reason := reader.check(path)) is not None:
                self.bad[i] = [self.file(i), reason]

    def file(self, i: int) -> str:
        """The name of image ``i`` in the shards: its path under the folder that holds every image."""
        image = self.images[i]
        return f"{i:06d}.png" if isinstance(image, torch.Tensor) else os.path.relpath(os.path.abspath(image), self.root)

    def __len__(self) -> int:
        return len(self.images)

    def __call__(self, i: int) -> dict:
        image, error = self.images[i], self.bad.get(i, ["", ""])[1]
        if isinstance(image, torch.Tensor):
            data = png(image)
        else:
            try:
                data = Path(image).read_bytes()
            except OSError as err:
                data, error = b"", error or f"cannot read the file ({err.strerror or err})"
        item = {"index": i, "file": self.file(i), "image": data, "error": error}
        return item if self.labels is None else {**item, "label": int(self.labels[i])}


def png(image: torch.Tensor) -> bytes:
    """A ``(3, H, W)`` uint8 image as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).contiguous().numpy()).save(buffer, format="PNG")
    return buffer.getvalue()


def write_shards(out: str | Path, splits: dict[str, StoredItems], meta: dict, chunk_bytes: str = "64MB") -> None:
    """Write ``splits`` into ``out`` with litdata's ``optimize``, one dataset each, then ``vlc_shards.json``.

    Args:
        out: the folder to create (it must not hold anything yet).
        splits: the items of each split.
        meta: the index's content besides the format and the sizes (task, class names, per split its labels or
            captions, source).
        chunk_bytes: the size of each chunk (``64MB``).

    Raises:
        UserError: ``out`` is not empty.
    """
    ld, out = litdata(), Path(out)
    if "://" in str(out):
        raise UserError(f"--out {out}: object-store paths are not written yet; write locally, then copy the folder")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {out} exists and is not empty; choose a new folder")
    for split, items in splits.items():
        inputs = list(range(len(items)))  # positions, in order: one worker keeps the order
        ld.optimize(
            fn=items, inputs=inputs, output_dir=str((out / split).resolve()), chunk_bytes=chunk_bytes,
            num_workers=1, reorder_files=False, verbose=False,
        )  # fmt: skip
        meta["splits"][split].update(count=len(items), bad=items.bad)
    (out / INDEX).write_text(json.dumps({"format": FORMAT, **meta}) + "\n", encoding="utf-8")
