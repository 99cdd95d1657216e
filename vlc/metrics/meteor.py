"""METEOR for captions through pycocoevalcap's Java scorer (needs ``java`` on the PATH)."""

import contextlib
import math
import warnings
from pathlib import Path

import torch
from pycocoevalcap.meteor import meteor as coco_meteor

from vlc.metrics.caption_metric import CaptionMetric
from vlc.metrics.java import java_runs


def meteor_available() -> bool:
    """Return whether METEOR can run: ``java`` starts and pycocoevalcap's jar is installed (checked once)."""
    return java_runs(Path(coco_meteor.__file__).with_name(coco_meteor.METEOR_JAR))


def _close(scorer: coco_meteor.Meteor) -> None:
    """Stop the scorer's Java process now rather than at garbage collection."""
    with contextlib.suppress(OSError):
        scorer.meteor_p.stdin.close()
    scorer.meteor_p.kill()
    scorer.meteor_p.wait()
    if scorer.lock.locked():  # compute_score failed half-way: keep the scorer's __del__ from blocking
        scorer.lock.release()


class Meteor(CaptionMetric):
    """Corpus METEOR 1.5 (English, normalised) of all accumulated captions, via pycocoevalcap.

    Each ``compute()`` starts a Java process (a few seconds, mostly loading the paraphrase table, up to 2 GB
    of heap) and stops it afterwards. The score aggregates the matching statistics of the whole corpus, so it
    is generally not the mean of per-image scores. Captions are tokenized first as ``tokenizer`` says (see
    :class:`CaptionMetric`; ``"ptb"`` is what the COCO evaluation does). Scores lie in ``[0, 1]``; 0 before any
    update. If Java is unavailable (see :func:`meteor_available`) ``compute()`` warns and returns NaN; with
    ``tokenizer="ptb"`` the constructor already raises :class:`vlc.errors.UserError`.

    Args:
        tokenizer: ``"vlc"`` or ``"ptb"``, see :class:`CaptionMetric`.
        kwargs: Passed to :class:`torchmetrics.Metric`.
    """

    plot_lower_bound = 0.0
    plot_upper_bound = 1.0

    def compute(self) -> torch.Tensor:
        """Return the corpus METEOR, or NaN without Java."""
        if not meteor_available():
            warnings.warn("METEOR needs Java on the PATH; returning NaN", RuntimeWarning, stacklevel=2)
            return self._as_tensor(math.nan)
        if not self.preds:
            return self._as_tensor(0.0)
        gts, res = self.coco_inputs()
        scorer = coco_meteor.Meteor()
        try:
            score, _ = scorer.compute_score(gts, res)
        finally:
            _close(scorer)
        return self._as_tensor(score)
