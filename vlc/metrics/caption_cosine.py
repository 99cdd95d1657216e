"""Cosine similarity between IDF-weighted (or plain) mean word embeddings of generated and reference captions."""

import itertools
from typing import Any, Literal

import torch
import torch.nn.functional as F

from vlc.metrics.caption_metric import CaptionMetric, Tokenizer
from vlc.vocabulary import Vocabulary

Weighting = Literal["idf", "mean"]
"""How the word vectors of a caption are averaged: see :class:`CaptionCosineSimilarity`."""


class CaptionCosineSimilarity(CaptionMetric):
    """Mean cosine similarity of weighted bag-of-embeddings caption vectors.

    A caption is embedded as the weighted mean of the rows of ``embedding`` of its in-vocabulary tokens (split
    as ``tokenizer`` says, see :class:`CaptionMetric`; unknown words and special tokens are left out), every
    occurrence of a word ``w`` weighted by

    - ``weighting="idf"`` (default): ``idf(w) = log(N / max(1, df(w)))``, where ``N`` is the number of images
      and ``df(w)`` the number of images whose references (taken together) contain ``w``: the document
      frequency of CIDEr, computed in ``compute()`` from all accumulated references (after gathering across
      processes). Words in every image's references (often ``"a"``) weigh 0, a word in no reference weighs
      ``log(N)``. So the score depends on the corpus: with a single image every weight is 0 and the metric is 0.
    - ``weighting="mean"``: 1, the plain mean. Frequent words (``"a"``, ``"on"``, ``"the"``) then dominate:
      with GloVe vectors a COCO caption scores about 0.95 against its own references and 0.89 against another
      image's.

    An image scores the mean over its references of ``cos(generated, reference)``; the metric is the mean over
    images. A caption whose weights sum to 0 (no known word, or only words of weight 0) has a zero vector, and
    any pair involving it contributes a similarity of 0. Scores lie in ``[-1, 1]``; 0 before any update.

    The embedding usually is the decoder's embedding weight, which changes during training: the metric keeps
    a reference to the tensor given (read at ``compute()`` time, detached, so in-place optimiser updates and
    ``.to(device)`` moves of the parameter are seen) and the caller may reassign ``metric.embedding``. It is
    neither registered as a parameter nor saved in the ``state_dict``.

    Args:
        embedding: ``[len(vocab), D]`` matrix.
        vocab: The vocabulary indexing its rows.
        weighting: ``"idf"`` or ``"mean"``, see above.
        tokenizer: ``"vlc"`` or ``"ptb"``, see :class:`CaptionMetric`. The vocabulary is usually built with
            ``"vlc"``; with ``"ptb"``, tokens such as ``"well-known"`` or ``"'s"`` are unknown and left out.
        kwargs: Passed to :class:`torchmetrics.Metric`.

    Raises:
        ValueError: If ``weighting`` is not one of those, or ``embedding`` is not ``[len(vocab), D]``.
    """

    plot_lower_bound = -1.0
    plot_upper_bound = 1.0

    def __init__(
        self,
        embedding: torch.Tensor,
        vocab: Vocabulary,
        weighting: Weighting = "idf",
        tokenizer: Tokenizer = "vlc",
        **kwargs: Any,
    ) -> None:
        if weighting not in ("idf", "mean"):
            raise ValueError(f"weighting must be 'idf' or 'mean', got {weighting!r}")
        super().__init__(tokenizer=tokenizer, **kwargs)
        self.vocab = vocab
        self.embedding = embedding
        self.weighting = weighting

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "embedding":  # keep it a plain attribute, even when given an nn.Parameter
            if not isinstance(value, torch.Tensor) or value.dim() != 2 or value.shape[0] != len(self.vocab):
                shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise ValueError(f"embedding must be a [{len(self.vocab)}, D] tensor, got {shape}")
            object.__setattr__(self, name, value)
            return
        super().__setattr__(name, value)

    def _ids(self, caption: str) -> list[int]:
        """The vocabulary ids of the known regular words of a tokenized caption."""
        return [i for i in map(self.vocab.index, caption.split()) if i >= len(Vocabulary.SPECIALS)]

    def _idf(self, references: list[list[list[int]]]) -> torch.Tensor:
        """``log(N / max(1, df))`` of every vocabulary word, ``df`` counting images whose references hold it."""
        df = torch.zeros(len(self.vocab), dtype=torch.float64)
        for image in references:
            df[torch.tensor(sorted({i for ref in image for i in ref}), dtype=torch.long)] += 1
        return torch.log(len(references) / df.clamp(min=1))

    def _vectors(self, captions: list[list[int]], weight: torch.Tensor, word_weight: torch.Tensor) -> torch.Tensor:
        """The weighted sums of the word vectors of ``captions``, a row each (a positive multiple of the mean)."""
        ids = torch.tensor([i for caption in captions for i in caption], dtype=torch.long, device=weight.device)
        starts = [0, *itertools.accumulate(len(caption) for caption in captions)][:-1]
        offsets = torch.tensor(starts, dtype=torch.long, device=weight.device)
        return F.embedding_bag(ids, weight, offsets, mode="sum", per_sample_weights=word_weight[ids])

    def compute(self) -> torch.Tensor:
        """Return the mean over images of the mean caption-to-reference cosine similarity."""
        if not self.preds:
            return self._as_tensor(0.0)
        weight = self.embedding.detach().float()
        preds, targets = self.tokenized()
        pred_ids = [self._ids(pred) for pred in preds]
        ref_ids = [[self._ids(ref) for ref in refs] for refs in targets]
        word_weight = self._idf(ref_ids) if self.weighting == "idf" else torch.ones(len(self.vocab))
        word_weight = word_weight.to(weight.device, weight.dtype)
        n_refs = torch.tensor([len(refs) for refs in ref_ids], device=weight.device)
        generated = self._vectors(pred_ids, weight, word_weight).repeat_interleave(n_refs, dim=0)
        references = self._vectors([ref for refs in ref_ids for ref in refs], weight, word_weight)
        cosine = F.cosine_similarity(generated, references, dim=1)
        image = torch.arange(len(preds), device=weight.device).repeat_interleave(n_refs)
        per_image = torch.zeros(len(preds), device=weight.device).index_add_(0, image, cosine) / n_refs
        return self._as_tensor(per_image.mean().item())
