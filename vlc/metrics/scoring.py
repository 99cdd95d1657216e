"""How a captioner's generated captions are scored and shown: :class:`Scoring` (``model.scoring`` in a config)."""

from dataclasses import dataclass
from typing import Literal

import torch
from jsonargparse.typing import NonNegativeInt
from torchmetrics import MetricCollection

from vlc.metrics.bleu import CorpusBLEU
from vlc.metrics.caption_cosine import CaptionCosineSimilarity
from vlc.metrics.cider import CIDErD
from vlc.metrics.diversity import CaptionDiversity
from vlc.metrics.meteor import Meteor, meteor_available
from vlc.metrics.rouge import RougeL
from vlc.vocabulary import Vocabulary


@dataclass(frozen=True)
class Scoring:
    """The scores of validation and test, and what they show beside them.

    In YAML ``scoring: {tokenizer: ptb, meteor: true}``, on the command line ``--model.scoring.meteor true``; given
    with ``--ckpt_path``, these values replace the checkpoint's.

    Args:
        tokenizer: how captions are split into words before scoring: ``vlc`` (``vlc.vocabulary.tokenize``) or
            ``ptb`` (the Stanford PTB tokenizer of the official COCO evaluation, through pycocoevalcap; needs
            Java): BLEU, CIDEr-D and ROUGE-L then equal the COCO evaluation server's.
        meteor: also compute METEOR (needs Java; starts a Java process per evaluation, a few seconds); without
            Java it is skipped with a warning.
        num_samples: validation images shown with their captions on the dashboard each epoch
            (``vlc.callbacks.caption_files.CaptionSamples``).
        baselines: ``vlc validate`` and ``vlc test`` also score a constant caption and nearest-neighbour retrieval
            on the same images (``vlc.callbacks.caption_baselines``; encodes the training images once).
    """

    tokenizer: Literal["vlc", "ptb"] = "vlc"
    meteor: bool = False
    num_samples: NonNegativeInt = 8
    baselines: bool = True

    def metrics(self, prefix: str, embedding: torch.Tensor, vocab: Vocabulary) -> MetricCollection:
        """BLEU-1..4, CIDEr-D, ROUGE-L, caption cosine, the collapse indicators and, when asked for, METEOR.

        Args:
            prefix: of every logged name, e.g. ``val/`` or ``test/nearest_``.
            embedding: the word vectors ``(V, D)`` caption cosine scores with; kept, not copied, so that a live
                learnt embedding stays shared.
            vocab: the vocabulary of ``embedding``'s rows.
        """
        metrics = {
            "bleu": CorpusBLEU(4, tokenizer=self.tokenizer),
            "cider_d": CIDErD(tokenizer=self.tokenizer),
            "rouge_l": RougeL(tokenizer=self.tokenizer),
            "caption_cosine": CaptionCosineSimilarity(embedding, vocab, tokenizer=self.tokenizer),
            "diversity": CaptionDiversity(),
        }
        if self.meteor and meteor_available():
            metrics["meteor"] = Meteor(tokenizer=self.tokenizer)
        return MetricCollection(metrics, prefix=prefix)
