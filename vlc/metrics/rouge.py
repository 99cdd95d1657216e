"""Mean ROUGE-L F-score for captions (pycocoevalcap's implementation)."""

import torch
from pycocoevalcap.rouge.rouge import Rouge

from vlc.metrics.caption_metric import CaptionMetric


class RougeL(CaptionMetric):
    """Mean over images of ROUGE-L, computed by pycocoevalcap's ``Rouge`` scorer.

    Per image: the longest common subsequence between the caption and each reference gives a precision and
    a recall; their maxima over the references are combined into an F-score with ``beta = 1.2``. Captions are
    tokenized as ``tokenizer`` says (see :class:`CaptionMetric`); with ``"ptb"`` the value is the official COCO
    evaluation's. Scores lie in ``[0, 1]``; 0 before any update.

    Args:
        tokenizer: ``"vlc"`` or ``"ptb"``, see :class:`CaptionMetric`.
        kwargs: Passed to :class:`torchmetrics.Metric`.
    """

    plot_lower_bound = 0.0
    plot_upper_bound = 1.0

    def compute(self) -> torch.Tensor:
        """Return the mean ROUGE-L F-score."""
        if not self.preds:
            return self._as_tensor(0.0)
        gts, res = self.coco_inputs()
        score, _ = Rouge().compute_score(gts, res)
        return self._as_tensor(score)
