"""Corpus-level BLEU-1..n for captions."""

import math
from collections.abc import Sequence
from typing import Any

import torch
from pycocoevalcap.bleu.bleu_scorer import cook_refs, cook_test

from vlc.metrics.caption_metric import CaptionMetric, Tokenizer


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]], n: int = 4) -> list[float]:
    """Compute corpus BLEU-1..n of whitespace-tokenized captions.

    Reference definition: pycocoevalcap's ``Bleu`` (the COCO caption evaluation), whose ``cook_refs`` and
    ``cook_test`` compute the statistics here. For each order, clipped n-gram matches (a hypothesis n-gram
    counts at most as often as in its most generous reference) and hypothesis n-grams are summed over the
    corpus; the brevity penalty compares the total hypothesis length with the sum of each hypothesis' closest
    reference length (ties to the shorter one): ``BLEU-k = BP * (p_1 * ... * p_k) ** (1 / k)``.

    No smoothing. If order ``j`` has no clipped match in the whole corpus (e.g. a few short captions with no
    common 4-gram, or no hypothesis of 4+ words), BLEU-k is exactly 0 for every ``k >= j``, while BLEU-k for
    ``k < j`` is unaffected. Where pycocoevalcap differs, it is only there: its ``1e-15 / (count + 1e-9)``
    guard gives a small but arbitrary non-zero number instead (up to ~0.03 when there are no 4-grams at all).
    Elsewhere the same guards (``(matches + 1e-15) / (count + 1e-9)`` and ``(hyp_len + 1e-15) / (ref_len + 1e-9)``)
    only shift pycocoevalcap's values by a relative ``~1e-9 / count`` (below 1e-9).

    NLTK's ``corpus_bleu`` with weights ``(1/k,) * k`` and no smoothing gives the same values when every
    hypothesis has at least ``n`` words; a shorter hypothesis adds a phantom n-gram to NLTK's denominators
    (``max(1, count)``), lowering its higher orders. For an order with no match NLTK returns ~0 (below 1e-50).

    Args:
        hypotheses: One caption per image, tokens separated by spaces.
        references: Per image, its reference captions, tokens separated by spaces.
        n: Highest n-gram order.

    Returns:
        ``[BLEU-1, ..., BLEU-n]`` in ``[0, 1]``.
    """
    correct, total = [0] * n, [0] * n
    hyp_len = ref_len = 0
    for hyp, refs in zip(hypotheses, references, strict=True):
        stats = cook_test(hyp, cook_refs(refs, n=n), eff="closest", n=n)
        hyp_len += stats["testlen"]
        ref_len += stats["reflen"]
        for k in range(n):
            correct[k] += stats["correct"][k]
            total[k] += stats["guess"][k]
    brevity = math.exp(min(0.0, 1.0 - ref_len / hyp_len)) if hyp_len else 0.0
    scores, log_precision = [], 0.0
    for k in range(n):
        if correct[k] == 0:
            return scores + [0.0] * (n - k)
        log_precision += math.log(correct[k] / total[k])
        scores.append(brevity * math.exp(log_precision / (k + 1)))
    return scores


class CorpusBLEU(CaptionMetric):
    """Corpus-level BLEU-1..n over all accumulated captions, as defined by :func:`corpus_bleu`.

    Captions and references are tokenized as ``tokenizer`` says (see :class:`CaptionMetric`); with ``"ptb"``
    the values are those of the official COCO evaluation (pycocoevalcap's ``PTBTokenizer`` and ``Bleu``) up to
    floating-point rounding, except for an order with no match, where this gives 0 (see :func:`corpus_bleu`).
    Unlike torchmetrics' ``BLEUScore``, BLEU-1/2 stay meaningful when some higher order has no match; that order
    and the ones above it are 0 (no smoothing).

    Args:
        n: Highest n-gram order.
        tokenizer: ``"vlc"`` or ``"ptb"``, see :class:`CaptionMetric`.
        kwargs: Passed to :class:`torchmetrics.Metric`.

    Returns (from ``compute``):
        ``{"bleu_1": ..., ..., "bleu_n": ...}``, scalar tensors in ``[0, 1]``; all 0 before any update.
    """

    plot_lower_bound = 0.0
    plot_upper_bound = 1.0

    def __init__(self, n: int = 4, tokenizer: Tokenizer = "vlc", **kwargs: Any) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        super().__init__(tokenizer=tokenizer, **kwargs)
        self.n = n

    def compute(self) -> dict[str, torch.Tensor]:
        """Return BLEU-1..n of the corpus."""
        gts, res = self.coco_inputs()
        scores = corpus_bleu([res[i][0] for i in res], [gts[i] for i in res], self.n)
        return {f"bleu_{k + 1}": self._as_tensor(score) for k, score in enumerate(scores)}
