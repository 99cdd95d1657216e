"""Cosine similarity between mean word embeddings of generated and reference captions."""

from typing import Any

import torch
import torch.nn.functional as F

from vlc.data.vocab import Vocabulary, tokenize
from vlc.metrics.caption_metric import CaptionMetric


class CaptionCosineSimilarity(CaptionMetric):
    """Mean cosine similarity of bag-of-embeddings caption vectors.

    A caption is embedded as the mean of the rows of ``embedding`` of its in-vocabulary tokens (tokenized with
    :func:`vlc.data.vocab.tokenize`; unknown words and special tokens are left out). An image scores the mean
    over its references of ``cos(generated, reference)``; the metric is the mean over images. A caption with
    no known word has a zero vector, and any pair involving it contributes a similarity of 0. Scores lie in
    ``[-1, 1]``; 0 before any update.

    The embedding usually is the decoder's embedding weight, which changes during training: the metric keeps
    a reference to the tensor given (read at ``compute()`` time, detached, so in-place optimiser updates and
    ``.to(device)`` moves of the parameter are seen) and the caller may reassign ``metric.embedding``. It is
    neither registered as a parameter nor saved in the ``state_dict``.

    Args:
        embedding: ``[len(vocab), D]`` matrix.
        vocab: The vocabulary indexing its rows.
        kwargs: Passed to :class:`torchmetrics.Metric`.
    """

    plot_lower_bound = -1.0
    plot_upper_bound = 1.0

    def __init__(self, embedding: torch.Tensor, vocab: Vocabulary, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.vocab = vocab
        self.embedding = embedding

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "embedding":  # keep it a plain attribute, even when given an nn.Parameter
            if not isinstance(value, torch.Tensor) or value.dim() != 2 or value.shape[0] != len(self.vocab):
                shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise ValueError(f"embedding must be a [{len(self.vocab)}, D] tensor, got {shape}")
            object.__setattr__(self, name, value)
            return
        super().__setattr__(name, value)

    def _bags(self, captions: list[str], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the flat in-vocabulary token ids of ``captions`` and the offset of each caption."""
        ids, offsets = [], []
        for caption in captions:
            offsets.append(len(ids))
            ids.extend(i for i in map(self.vocab.index, tokenize(caption)) if i >= len(Vocabulary.SPECIALS))
        return torch.tensor(ids, dtype=torch.long, device=device), torch.tensor(offsets, device=device)

    def compute(self) -> torch.Tensor:
        """Return the mean over images of the mean caption-to-reference cosine similarity."""
        if not self.preds:
            return self._as_tensor(0.0)
        weight = self.embedding.detach()
        n_refs = torch.tensor([len(refs) for refs in self.targets], device=weight.device)
        captions = self.preds + [ref for refs in self.targets for ref in refs]
        ids, offsets = self._bags(captions, weight.device)
        vectors = F.embedding_bag(ids, weight.float(), offsets, mode="mean")
        generated = vectors[: len(self.preds)].repeat_interleave(n_refs, dim=0)
        cosine = F.cosine_similarity(generated, vectors[len(self.preds) :], dim=1)
        image = torch.arange(len(self.preds), device=weight.device).repeat_interleave(n_refs)
        per_image = torch.zeros(len(self.preds), device=weight.device).index_add_(0, image, cosine) / n_refs
        return self._as_tensor(per_image.mean().item())
