"""CIDEr-D of single captions against their image's references, with document frequencies fixed in advance.

The reward of self-critical sequence training (Rennie et al., 2017; ``vlc.tasks.captioner``'s ``scst_from_epoch``):
the CIDEr-D that pycocoevalcap's ``Cider`` gives, but with the n-gram document frequencies counted once over a
fixed corpus (the TRAINING references, as ruotianluo's ``CiderD(df="coco-train")``) instead of over the captions
being scored, so that a caption's reward does not depend on the rest of its batch. With the corpus being scored as
the fixed corpus, the values are pycocoevalcap's exactly (same n-gram orders 1..4, TF-IDF with ``log(max(1, df))``,
clipped hypothesis weights, Gaussian length penalty ``sigma = 6`` on the count of bigrams as pycocoevalcap has it,
mean over orders and references, times 10).
"""

import math
from collections import Counter
from collections.abc import Iterable, Sequence

import torch

from vlc.vocabulary import tokenize

N = 4
"""Longest n-gram."""
SIGMA = 6.0
"""Width of the Gaussian length penalty."""

Vector = tuple[list[dict[tuple[str, ...], float]], list[float], int]
"""One caption's TF-IDF weights per order, their norms per order, and its length (pycocoevalcap's bigram count)."""


def ngrams(words: Sequence[str]) -> Counter:
    """Counts of the 1..4-grams of ``words``."""
    return Counter(tuple(words[i : i + n]) for n in range(1, N + 1) for i in range(len(words) - n + 1))


class CiderReward:
    """Per-caption CIDEr-D with the document frequencies of ``corpus``.

    Args:
        corpus: per image, its reference captions (raw strings, tokenized with :func:`vlc.vocabulary.tokenize`).
    """

    def __init__(self, corpus: Iterable[Sequence[str]]) -> None:
        self.document_frequency: Counter = Counter()
        images = 0
        for refs in corpus:
            images += 1
            self.document_frequency.update(set().union(*(ngrams(tokenize(ref)) for ref in refs)))
        if images == 0:
            raise ValueError("CiderReward needs a corpus of at least one image")
        self.log_images = math.log(float(images))
        self._references: dict[tuple[str, ...], list[Vector]] = {}  # each image's reference vectors, computed once

    def vector(self, words: Sequence[str]) -> Vector:
        """TF-IDF weights of the n-grams of ``words`` per order, their norms and the caption's length."""
        weights: list[dict[tuple[str, ...], float]] = [{} for _ in range(N)]
        for gram, count in ngrams(words).items():
            weights[len(gram) - 1][gram] = count * (self.log_images - math.log(max(1.0, self.document_frequency[gram])))
        norms = [math.sqrt(sum(w * w for w in order.values())) for order in weights]
        return weights, norms, sum(1 for _ in zip(words, words[1:]))  # pycocoevalcap's length: its bigram count

    def references(self, refs: Sequence[str]) -> list[Vector]:
        """The vectors of an image's references (cached by their text)."""
        key = tuple(refs)
        if key not in self._references:
            self._references[key] = [self.vector(tokenize(ref)) for ref in refs]
        return self._references[key]

    def score(self, caption: str, refs: Sequence[str]) -> float:
        """CIDEr-D of one caption (words separated by spaces, as the vocabulary decodes them) against ``refs``."""
        hyp, hyp_norms, hyp_len = self.vector(caption.split())
        total = 0.0
        for ref, ref_norms, ref_len in self.references(refs):
            penalty = math.exp(-((hyp_len - ref_len) ** 2) / (2 * SIGMA**2))
            for n in range(N):
                value = sum(min(w, ref[n].get(gram, 0.0)) * ref[n].get(gram, 0.0) for gram, w in hyp[n].items())
                if hyp_norms[n] and ref_norms[n]:
                    value /= hyp_norms[n] * ref_norms[n]
                total += value * penalty / N
        return 10.0 * total / max(len(refs), 1)

    def __call__(self, captions: Sequence[str], references: Sequence[Sequence[str]]) -> torch.Tensor:
        """CIDEr-D ``(B,)`` float32 of each caption against its references (``references[i]`` for caption i)."""
        return torch.tensor([self.score(c, refs) for c, refs in zip(captions, references)], dtype=torch.float32)
