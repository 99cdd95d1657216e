"""Corpus CIDEr-D for captions (pycocoevalcap's implementation)."""

import torch
from pycocoevalcap.cider.cider import Cider

from vlc.metrics.caption_metric import CaptionMetric


class CIDErD(CaptionMetric):
    """CIDEr-D of all accumulated captions, computed by pycocoevalcap's ``Cider`` scorer.

    pycocoevalcap's ``Cider`` is the CIDEr-D variant of the COCO caption evaluation: TF-IDF weighted 1..4-gram
    vectors, clipped hypothesis weights (``min(hyp, ref)``), a Gaussian length penalty with ``sigma = 6``,
    averaged over orders and references and multiplied by 10. The value is reported exactly as pycocoevalcap
    gives it: it is **not** bounded by 1 (a perfect caption typically scores several units; published COCO
    results around 1.1-1.3 are usually written as 110-130).

    The IDF is estimated from the references of the accumulated corpus, so the score is corpus-dependent: a
    corpus of a single image always scores 0 (every n-gram has ``log(1 / 1) = 0`` IDF). Captions are
    tokenized as ``tokenizer`` says (see :class:`CaptionMetric`); with ``"ptb"`` the value is the official COCO
    evaluation's. Returns 0 before any update or when no reference has a word.

    Args:
        tokenizer: ``"vlc"`` or ``"ptb"``, see :class:`CaptionMetric`.
        kwargs: Passed to :class:`torchmetrics.Metric`.
    """

    plot_lower_bound = 0.0

    def compute(self) -> torch.Tensor:
        """Return the corpus CIDEr-D (mean over images)."""
        gts, res = self.coco_inputs()
        if not any(ref for refs in gts.values() for ref in refs):
            return self._as_tensor(0.0)
        score, _ = Cider().compute_score(gts, res)
        return self._as_tensor(score)

    def per_image(self) -> list[float]:
        """Each image's CIDEr-D, in the order they were added (the IDF, as in :meth:`compute`, the corpus's)."""
        gts, res = self.coco_inputs()
        if not any(ref for refs in gts.values() for ref in refs):
            return [0.0] * len(res)
        _, scores = Cider().compute_score(gts, res)
        return [float(value) for value in scores]
