"""What a run does with image files it cannot read: the one policy, for every dataset, loader and data module.

Why a file cannot be read is the reason of a :class:`vlc.images.BadImage` (the reader's header check or decoding);
everything else is here. Bad files are found in three places: a header check of every file before training
(:func:`check_files`), the image cache build (:mod:`vlc.data.image_cache`) and, without a cache, the first pass
over the files: a dataset returns an :class:`Unreadable` in place of the sample (:func:`read_or_unreadable`), the
loader's collate function leaves it out of the batch and passes it beside the batch (:class:`SkipUnreadable`), and
the data module records it (:meth:`BadImages.take`); ``vlc.callbacks.BadImageCheck`` gives the verdict after the pass.

``data.bad_images`` decides: ``stop`` (the default) names every bad file, one warning line each, and stops with
a count; ``skip`` leaves them out with the same warnings and a count, but still stops when more than
``data.max_bad_fraction`` of the images (over every pass) are bad, or when none can be read. Prediction always
skips, and lists the files beside its output.
"""

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch.utils.data import default_collate

from vlc.errors import UserError, warn
from vlc.images import BadImage, ImageReader

if TYPE_CHECKING:
    import lightning as L

Policy = Literal["stop", "skip"]


@dataclass
class Unreadable:
    """A file that could not be read, and why."""

    path: str
    reason: str


def read_or_unreadable(reader: ImageReader, path: str | Path) -> torch.Tensor | Unreadable:
    """The image at ``path`` (``reader``'s tensor), or an :class:`Unreadable` saying why not.

    What every dataset of files returns in place of a sample it cannot read, and what the cache build records.
    """
    try:
        return reader(path)
    except BadImage as bad:
        return Unreadable(bad.path, bad.reason)


@dataclass
class WithUnreadable:
    """A batch (None when no item of it could be read) and the items left out of it."""

    batch: Any
    unreadable: list[Unreadable]


class SkipUnreadable:
    """A collate function that leaves :class:`Unreadable` items out of the batch and passes them beside it."""

    def __init__(self, collate: Callable | None = None) -> None:
        self.collate = collate or default_collate

    def __call__(self, items: list) -> Any:
        unreadable = [item for item in items if isinstance(item, Unreadable)]
        if not unreadable:
            return self.collate(items)
        good = [item for item in items if not isinstance(item, Unreadable)]
        return WithUnreadable(self.collate(good) if good else None, unreadable)


class BadImages:
    """The record of a run's unreadable images and its policy for them.

    Args:
        policy: ``stop`` or ``skip`` (see the module docstring); ``predict`` skips and lists the files beside the
            predictions.
        max_fraction: with ``skip``, the largest share of bad images a run accepts, counted over every pass.

    Raises:
        UserError: ``max_fraction`` is not between 0 and 1.
    """

    def __init__(self, policy: Policy | Literal["predict"] = "stop", max_fraction: float = 1.0) -> None:
        if not 0.0 <= max_fraction <= 1.0:
            raise UserError(f"data.max_bad_fraction must be between 0 and 1, got {max_fraction}")
        self.policy, self.max_fraction = policy, max_fraction
        self.found: list[Unreadable] = []
        self._new: dict[str, list[Unreadable]] = defaultdict(list)  # by pass: "files" (setup), "train", "val", ...
        self._seen: set[str] = set()
        self._bad, self._files = 0, 0  # over every verdict so far, for the ceiling

    def add(self, path: str | Path, reason: str, during: str = "files") -> None:
        """Record (and name, once) a file that cannot be read; a file met again in a later epoch is not counted.

        Args:
            path: the file.
            reason: why it cannot be read.
            during: the pass that met it: ``files`` (checks before training), or a loader's split (``train``, ...).
        """
        if str(path) in self._seen:
            return
        self._seen.add(str(path))
        self.found.append(Unreadable(str(path), reason))
        self._new[during].append(self.found[-1])
        warn(f"{'cannot read' if self.policy == 'stop' else 'skipping'} {path}: {reason}")

    def take(self, batch: Any, trainer: "L.Trainer | None") -> Any:
        """The batch without its unreadable items, which are recorded (called on every batch a loader gives).

        None when no item of the batch could be read: the tasks' steps then do nothing (training takes a zero
        loss, so that every DDP process still takes part in the step).
        """
        if not isinstance(batch, WithUnreadable):
            return batch
        during = running_split(trainer)
        for item in batch.unreadable:
            self.add(item.path, item.reason, during)
        return batch.batch

    def pending(self, during: str) -> int:
        """How many bad images the pass ``during`` found since its last verdict (this process)."""
        return len(self._new.get(during, []))

    def verdict(self, what: str, total: int, during: str = "files", count: int | None = None) -> str | None:
        """The error that stops the run for the bad images a pass found since its last verdict, or None to go on.

        Args:
            what: what was read, for the message (``training images``).
            total: how many were read.
            during: the pass (see :meth:`add`).
            count: how many bad images the pass found in all processes (under DDP); this process's by default.
        """
        new = self._new.pop(during, [])
        count = len(new) if count is None else count
        if not count:
            return None
        self._bad, self._files = self._bad + count, max(self._files, total)
        listed = "each named above" + (f", the first {new[0].path}: {new[0].reason}" if new else "")
        if count == 1 and new:
            listed = f"{new[0].path}: {new[0].reason}"
        if self.policy == "predict":
            warn(f"skipped {count} of {total} {what} that cannot be read (listed beside the predictions)")
            return None
        if count >= total:
            return f"none of the {total} {what} can be read ({listed})"
        if self.policy == "stop":
            return (
                f"{count} of {total} {what} cannot be read ({listed}); fix or remove them, or set "
                "data.bad_images: skip to leave them out"
            )
        share = self._bad / max(self._files, 1)
        if share > self.max_fraction:
            return (
                f"{count} of {total} {what} cannot be read ({listed}); with those found before, {share:.1%} of the "
                f"images are bad, more than data.max_bad_fraction {self.max_fraction:g}; fix or remove them"
            )
        warn(f"left out {count} of {total} {what} that cannot be read (data.bad_images: skip)")
        return None

    def settle(self, what: str, total: int) -> None:
        """:meth:`verdict` of the checks made before training, raised as a ``UserError`` when the run must stop."""
        error = self.verdict(what, total)
        if error is not None:
            raise UserError(error)


def running_split(trainer: "L.Trainer | None") -> str:
    """The split whose loader ``trainer`` is running: ``train``, ``val``, ``test`` or ``predict``."""
    if trainer is None:
        return "files"
    if trainer.training:
        return "train"
    if trainer.validating or trainer.sanity_checking:
        return "val"
    return "test" if trainer.testing else "predict"


def check_files(paths: Sequence[Path], reader: ImageReader, bad: BadImages) -> list[int]:
    """Positions of the files that pass a header check (no pixel is decoded); the others go to ``bad``.

    The caller settles ``bad`` once the files' first pass (the cache build) has found the rest.
    """
    kept = []
    for i, path in enumerate(paths):
        reason = reader.check(path)
        if reason is None:
            kept.append(i)
        else:
            bad.add(path, reason)
    return kept
