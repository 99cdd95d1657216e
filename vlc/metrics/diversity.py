"""Signs of a collapsed captioner: how many captions are distinct, end properly, and how many words they use."""

from collections.abc import Sequence
from typing import Any

import torch
from torchmetrics import Metric

from vlc.metrics.caption_metric import cat_state, from_bytes, to_bytes
from vlc.vocabulary import tokenize


class CaptionDiversity(Metric):
    """Collapse indicators of the generated captions of an epoch.

    ``compute()`` returns a dict of three scalar tensors (float32):

    - ``distinct_captions``: the number of distinct generated captions divided by the number of captions, in
      ``(0, 1]``. Captions are compared as their :func:`vlc.vocabulary.tokenize` tokens (so ``"A dog."`` and
      ``"a dog"`` are the same caption). A model that gives every image the same sentence scores ``1 / N``.
    - ``ended``: the share of captions for which the decoder produced ``<end>`` (rather than stopping at the
      length limit), in ``[0, 1]``, as the ``ended`` flags given to ``update()`` say.
    - ``vocabulary_used``: the number of distinct tokens over all generated captions (a count, not a share).

    All three are 0 before any update. In a ``MetricCollection`` the keys come out as they are (with the
    collection's prefix, e.g. ``val/distinct_captions``), unless two metrics of the collection return the same
    key: then torchmetrics prefixes every dict key with its metric's name (``val/diversity_distinct_captions``).

    The captions are kept as UTF-8 bytes in tensor states like :class:`vlc.metrics.caption_metric.CaptionMetric`
    does, and the flags as 0/1 in the metric's dtype, all concatenated across processes: distinct captions
    and words are counted over the whole gathered epoch, not per process.

    Args:
        kwargs: Passed to :class:`torchmetrics.Metric`.
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name in ("pred_bytes", "pred_lengths", "ended"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    @property
    def preds(self) -> list[str]:
        """The generated captions so far."""
        return from_bytes(self.pred_bytes, self.pred_lengths)

    def update(
        self,
        preds: Sequence[str],
        targets: Sequence[Sequence[str]] | None = None,
        *,
        ended: torch.Tensor | Sequence[bool],
    ) -> None:
        """Add a batch of generated captions and whether each ended with ``<end>``.

        Args:
            preds: One generated caption per image.
            targets: The references, ignored: accepted so that the metric updates in the same
                ``MetricCollection`` as the reference-based ones, ``update(preds, targets, ended=...)``.
            ended: ``(B,)`` booleans (or 0/1), True where the decoder produced ``<end>``.

        Raises:
            ValueError: If ``preds`` is not a list of strings, or ``ended`` (or ``targets``) has another length.
        """
        if isinstance(preds, str) or not all(isinstance(pred, str) for pred in preds):
            raise ValueError("preds must be a list of captions (strings), one per image")
        flags = torch.as_tensor(ended).detach()
        if flags.dim() != 1 or len(flags) != len(preds):
            raise ValueError(f"ended must be one flag per caption, shape ({len(preds)},), got {tuple(flags.shape)}")
        if targets is not None and len(targets) != len(preds):
            raise ValueError(f"targets must be one list per caption, got {len(targets)} for {len(preds)}")
        pred_bytes, pred_lengths = to_bytes(preds)
        for state, values in ((self.pred_bytes, pred_bytes), (self.pred_lengths, pred_lengths), (self.ended, flags)):
            state.append(values.to(self.device, self.dtype))  # one dtype on every process, as CaptionMetric does

    def compute(self) -> dict[str, torch.Tensor]:
        """Return ``{"distinct_captions": ..., "ended": ..., "vocabulary_used": ...}``."""
        captions = [tuple(tokenize(pred)) for pred in self.preds]
        if not captions:
            return {name: self._as_tensor(0.0) for name in ("distinct_captions", "ended", "vocabulary_used")}
        return {
            "distinct_captions": self._as_tensor(len(set(captions)) / len(captions)),
            "ended": self._as_tensor(cat_state(self.ended).double().mean().item()),
            "vocabulary_used": self._as_tensor(len({word for caption in captions for word in caption})),
        }

    def _as_tensor(self, value: float) -> torch.Tensor:
        return torch.tensor(float(value), dtype=torch.float32, device=self.device)
