"""Base class of the caption metrics: accumulates caption strings and syncs them across processes."""

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torchmetrics import Metric

from vlc.data.vocab import tokenize

_instance_ids = itertools.count()


class CaptionMetric(Metric):
    """Accumulate generated captions and their references as Python strings.

    ``update(preds, targets)`` takes the generated caption of each image and, per image, the list of its
    reference captions. The strings are kept in two list states, ``preds`` and ``targets``, that
    :meth:`reset` clears. Torchmetrics can only all-gather tensors, so :meth:`_sync_dist` is overridden to
    gather the strings with :func:`torch.distributed.all_gather_object` when ``compute()`` runs under an
    initialised process group (the states of every rank are concatenated in rank order; a custom
    ``dist_sync_fn`` is not used). The strings are neither moved by ``.to(device)`` nor saved in the
    ``state_dict``.

    In a :class:`torchmetrics.MetricCollection`, caption metrics never join a compute group (each keeps its
    own copy of the strings): torchmetrics' state comparison cannot handle strings, so every instance also
    holds an empty tensor state whose name is unique to it.

    Subclasses implement ``compute()`` from ``self.preds`` / ``self.targets``, typically through
    :meth:`coco_inputs`. Prefer ``update()`` + ``compute()`` over ``forward()``: ``forward`` also computes a
    value on the batch alone, which is wasted work for corpus-level metrics.

    Args:
        kwargs: Passed to :class:`torchmetrics.Metric`.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    _STRING_STATES = ("preds", "targets")
    preds: list[str]
    targets: list[list[str]]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("preds", default=[], dist_reduce_fx=None)
        self.add_state("targets", default=[], dist_reduce_fx=None)
        self.add_state(f"_no_compute_group_{next(_instance_ids)}", default=torch.zeros(0), dist_reduce_fx="sum")

    def update(self, preds: Sequence[str], targets: Sequence[Sequence[str]]) -> None:
        """Add a batch of generated captions and their references.

        Args:
            preds: One generated caption per image.
            targets: Per image, a non-empty list of reference captions.

        Raises:
            ValueError: If the lengths differ, an image has no reference, or an item is not a string.
        """
        if isinstance(preds, str) or len(preds) != len(targets):
            raise ValueError("preds must be a list of captions, one per image, as long as targets")
        for pred, refs in zip(preds, targets, strict=True):
            if not isinstance(pred, str):
                raise ValueError(f"each prediction must be a string, got {type(pred).__name__}")
            if isinstance(refs, str) or not refs or not all(isinstance(ref, str) for ref in refs):
                raise ValueError(f"each target must be a non-empty list of strings, got {refs!r}")
        self.preds.extend(preds)
        self.targets.extend(list(refs) for refs in targets)

    def coco_inputs(self) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
        """Return ``(gts, res)`` as pycocoevalcap scorers expect them.

        Both sides are tokenized with :func:`vlc.data.vocab.tokenize` (lower case, no punctuation) and
        re-joined with single spaces; keys are the image positions.
        """
        gts = {i: [" ".join(tokenize(ref)) for ref in refs] for i, refs in enumerate(self.targets)}
        res = {i: [" ".join(tokenize(pred))] for i, pred in enumerate(self.preds)}
        return gts, res

    def _as_tensor(self, value: float) -> torch.Tensor:
        return torch.tensor(float(value), dtype=torch.float32, device=self.device)

    def _sync_dist(self, dist_sync_fn: Callable | None = None, process_group: Any | None = None) -> None:
        """Gather the caption strings of all ranks (``dist_sync_fn`` is ignored: it only handles tensors)."""
        group = process_group or self.process_group
        gathered: list[Any] = [None] * dist.get_world_size(group)
        dist.all_gather_object(gathered, (self.preds, self.targets), group=group)
        self.preds = [pred for preds, _ in gathered for pred in preds]
        self.targets = [refs for _, targets in gathered for refs in targets]

    def _apply(self, fn: Callable, exclude_state: Sequence[str] = ()) -> torch.nn.Module:
        """Apply ``fn`` (e.g. ``.to(device)``) to tensors only, never to the string states."""
        return super()._apply(fn, exclude_state=(*exclude_state, *self._STRING_STATES))

    def _move_list_states_to_cpu(self) -> None:
        """Strings live on the CPU already (``compute_on_cpu=True`` is a no-op)."""
