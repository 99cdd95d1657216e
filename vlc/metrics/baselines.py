"""Captioner-free baselines to compare captioning scores with: the best constant caption and nearest neighbours.

A captioner is only worth its numbers if it beats what the language prior and image retrieval give without
generating anything. Devlin et al. showed that copying the "consensus" caption of the nearest training images
rivals generative captioners on the automatic metrics (J. Devlin, S. Gupta, R. Girshick, M. Mitchell,
C. L. Zitnick, "Exploring Nearest Neighbor Approaches for Image Captioning", arXiv:1505.04467, 2015; see also
J. Devlin et al., "Language Models for Image Captioning: The Quirks and What Works", ACL 2015).

Both baselines work on the CIDEr n-gram space of the training references: captions tokenized with
:func:`vlc.vocabulary.tokenize`, 1- to 4-gram counts weighted by the IDF ``log(N) - log(df)``, where ``N`` is the
number of training images and ``df`` the number of images whose references hold the n-gram (as pycocoevalcap's
CIDEr-D computes it on the training set). Everything is plain torch on sparse (entry list) vectors.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vlc.vocabulary import tokenize

ORDERS = 4  # 1- to 4-grams, as CIDEr
SIGMA = 6.0  # CIDEr-D's length penalty


@dataclass
class _NGrams:
    """TF-IDF n-gram vectors of the training captions, as sparse entries sorted by caption (CSR).

    Attributes:
        captions: The raw captions, flattened image by image.
        tokens: Their tokens.
        image_ptr: ``(images + 1,)`` captions of image ``i`` are ``image_ptr[i]:image_ptr[i + 1]``.
        caption_ptr: ``(captions + 1,)`` entries of caption ``c`` are ``caption_ptr[c]:caption_ptr[c + 1]``.
        rows: ``(E,)`` caption of each entry.
        cols: ``(E,)`` n-gram id of each entry.
        tfidf: ``(E,)`` float64 count times IDF.
        unit: ``(E,)`` ``tfidf`` divided by the norm of its caption's vector of that order (0 for a zero norm).
        norms: ``(captions, 4)`` norm of each caption's vector of each order.
        order: ``(n-grams,)`` order minus one of each n-gram.
        lengths: ``(captions,)`` number of bigrams, the length CIDEr-D's penalty uses.
        weight: ``(captions,)`` ``1 / (images * references of its image)``, CIDEr-D's weight of a reference.
    """

    captions: list[str]
    tokens: list[tuple[str, ...]]
    image_ptr: torch.Tensor
    caption_ptr: torch.Tensor
    rows: torch.Tensor
    cols: torch.Tensor
    tfidf: torch.Tensor
    unit: torch.Tensor
    norms: torch.Tensor
    order: torch.Tensor
    lengths: torch.Tensor
    weight: torch.Tensor


def _ngrams(references: list[list[str]]) -> _NGrams:
    """Tokenize the training references and build their CIDEr TF-IDF n-gram vectors.

    Raises:
        ValueError: If there is no image or an image has no reference.
    """
    if not references or any(isinstance(refs, str) or not refs for refs in references):
        raise ValueError("train_references must be a non-empty list of non-empty lists of captions")
    captions = [caption for refs in references for caption in refs]
    tokens = [tuple(tokenize(caption)) for caption in captions]
    words: dict[str, int] = {}
    flat = torch.tensor(
        [words.setdefault(word, len(words)) for caption in tokens for word in caption], dtype=torch.long
    )
    caption_of = torch.repeat_interleave(torch.arange(len(tokens)), torch.tensor([len(t) for t in tokens]))
    # n-gram ids, order by order: the id of the n-gram at a position is the compacted pair (id of the (n-1)-gram
    # there, next word); positions whose n-gram would cross into the next caption are left out.
    rows, cols, orders, ids, vocab = [], [], [], flat, 0
    for n in range(ORDERS):
        valid = torch.ones_like(flat, dtype=torch.bool)
        if n:
            valid = caption_of[:-n] == caption_of[n:]
            distinct, inverse = torch.unique((ids[:-1] * len(words) + flat[n:])[valid], return_inverse=True)
            ids = torch.zeros(len(valid), dtype=torch.long).masked_scatter_(valid, inverse)
        rows.append(caption_of[: len(valid)][valid])
        cols.append(ids[valid] + vocab)
        orders.append(torch.full((len(cols[-1]),), n))
        vocab += len(words) if n == 0 else len(distinct)
    rows, cols, vocab, n_captions = torch.cat(rows), torch.cat(cols), max(vocab, 1), len(captions)
    order = torch.zeros(vocab, dtype=torch.long).index_put_((cols,), torch.cat(orders))
    keys, tf = torch.unique(rows * vocab + cols, return_counts=True)  # sorted: caption by caption
    rows, cols = keys // vocab, keys % vocab

    counts = torch.tensor([len(refs) for refs in references])
    image_ptr = F.pad(counts.cumsum(0), (1, 0))
    image = torch.repeat_interleave(torch.arange(len(references)), counts)
    weight = torch.repeat_interleave(1.0 / (len(references) * counts.double()), counts)
    df = torch.bincount(torch.unique(image[rows] * vocab + cols) % vocab, minlength=vocab)
    idf = math.log(len(references)) - torch.log(df.clamp_min(1).double())
    tfidf = tf.double() * idf[cols]

    slot = rows * ORDERS + order[cols]
    norms = torch.zeros(n_captions * ORDERS, dtype=torch.float64).index_add_(0, slot, tfidf**2).sqrt()
    unit = tfidf / norms[slot].clamp_min(1e-300)
    caption_ptr = F.pad(torch.bincount(rows, minlength=n_captions).cumsum(0), (1, 0))
    lengths = torch.tensor([max(len(words) - 1, 0) for words in tokens])
    return _NGrams(
        captions,
        tokens,
        image_ptr,
        caption_ptr,
        rows,
        cols,
        tfidf,
        unit,
        norms.view(-1, ORDERS),
        order,
        lengths,
        weight,
    )


def _ragged_arange(starts: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Concatenate ``arange(start, start + count)`` for each pair, in order."""
    shift = starts - (counts.cumsum(0) - counts)
    return torch.arange(int(counts.sum())) + torch.repeat_interleave(shift, counts)


def _cider_d_constant(table: _NGrams, caption: int, index: tuple[torch.Tensor, ...]) -> float:
    """Exact pycocoevalcap CIDEr-D of training caption ``caption`` given as the caption of every training image.

    Only the references sharing an n-gram with the caption contribute, so they are read from an inverted index:
    ``index`` is ``(gram_ptr, tfidf, weighted_unit, length)``, the entries sorted by n-gram (those of n-gram
    ``g`` at ``gram_ptr[g]:gram_ptr[g + 1]``) with their TF-IDF, their ``unit`` times their caption's ``weight``,
    and their caption's length.
    """
    gram_ptr, ref_tfidf, ref_unit, ref_length = index
    mine = slice(int(table.caption_ptr[caption]), int(table.caption_ptr[caption + 1]))
    grams, hyp = table.cols[mine], table.tfidf[mine]
    hyp_norm = table.norms[caption, table.order[grams]].clamp_min(1e-300)
    counts = gram_ptr[grams + 1] - gram_ptr[grams]
    at = _ragged_arange(gram_ptr[grams], counts)
    clipped = torch.minimum(torch.repeat_interleave(hyp, counts), ref_tfidf[at]) * ref_unit[at]
    penalty = torch.exp(-((table.lengths[caption] - ref_length[at]).double() ** 2) / (2 * SIGMA**2))
    return 10.0 / ORDERS * float((clipped * penalty / torch.repeat_interleave(hyp_norm, counts)).sum())


def constant_caption(train_references: list[list[str]], rescore: int = 50) -> str:
    """The training caption with the highest CIDEr-D when it is the caption of every training image.

    This is the language-prior baseline: a captioner that ignores its image can at best score about this.
    Selection, deterministic:

    1. Candidates are the training captions, deduplicated on their tokens (the first occurrence is kept).
    2. They are ranked by the mean over images, of the mean over the image's references, of the mean over
       n-gram orders of the cosine between the candidate's and the reference's TF-IDF vectors: CIDEr-D without
       its clipping and length penalty. That is a dot product of the candidate's unit vectors with the centroid
       of the references' unit vectors (weighted ``1 / (images * image's references)``), which is linear in the
       number of captions.
    3. The ``rescore`` best ranked are scored with the exact CIDEr-D of pycocoevalcap (``Cider``, with the IDF of
       all training images, each with all its references), computed through an inverted n-gram index, and the
       best is returned; ties go to the better ranked. The exact argmax over all candidates is returned whenever
       it is among those ``rescore``.

    Args:
        train_references: Per training image, its reference captions.
        rescore: How many of the best ranked candidates to score exactly.

    Returns:
        The chosen caption, as written in ``train_references``.

    Raises:
        ValueError: If there is no image, an image has no reference, or ``rescore < 1``.
    """
    if rescore < 1:
        raise ValueError(f"rescore must be at least 1, got {rescore}")
    table = _ngrams(train_references)
    first: dict[tuple[str, ...], int] = {}
    for i, words in enumerate(table.tokens):
        first.setdefault(words, i)
    candidates = torch.tensor(list(first.values()))

    weighted_unit = table.unit * table.weight[table.rows]
    centroid = torch.zeros(len(table.order), dtype=torch.float64).index_add_(0, table.cols, weighted_unit)
    approx = torch.zeros(len(table.captions), dtype=torch.float64)
    approx.index_add_(0, table.rows, table.unit * centroid[table.cols])
    ranked = candidates[torch.sort(approx[candidates], descending=True, stable=True).indices[:rescore]]

    by_gram = torch.sort(table.cols, stable=True).indices
    gram_ptr = F.pad(torch.bincount(table.cols, minlength=len(table.order)).cumsum(0), (1, 0))
    index = (gram_ptr, table.tfidf[by_gram], weighted_unit[by_gram], table.lengths[table.rows[by_gram]])
    exact = torch.tensor([_cider_d_constant(table, int(c), index) for c in ranked], dtype=torch.float64)
    return table.captions[int(ranked[torch.argmax(exact)])]


def nearest_neighbour_captions(
    query_features: torch.Tensor,
    train_features: torch.Tensor,
    train_references: list[list[str]],
    k: int | None = None,
    chunk_size: int = 256,
) -> list[str]:
    """Caption each query image with the consensus caption of its nearest training images (Devlin et al., 2015).

    For each query, the ``k`` training images with the highest cosine similarity of features are found; their
    captions are the candidates. The returned candidate is the one with the highest mean similarity to the
    *other* candidates, where the similarity of two captions is the mean over 1- to 4-grams of the cosine between
    their TF-IDF n-gram vectors (CIDEr's sentence vectors, IDF from the training references; no clipping, no
    length penalty). Ties go to the candidate of the nearer image, then to the earlier reference. The mean over
    the others is ``(u_c . sum_c' u_c' - u_c . u_c) / (candidates - 1)``, so a chunk of queries costs one sparse
    sum per query, not a candidates x candidates matrix.

    Queries are processed ``chunk_size`` at a time (a ``chunk_size x N`` similarity matrix), on the device of
    ``train_features``; the result does not depend on ``chunk_size``. No training image is excluded: the query
    and training sets are meant to be disjoint splits.

    Args:
        query_features: ``(Q, D)`` pooled encoder features of the query images.
        train_features: ``(N, D)`` the same features of the training images.
        train_references: ``N`` lists of reference captions.
        k: Number of neighbours, capped at ``N``. ``None``: ``min(60, max(1, N // 100))`` -- Devlin et al. used
            k of 50-90 on COCO's ~80k images; the default keeps the candidates a small share of a small training
            set, for which a pool of 60 images would make every query's consensus nearly the same caption.
        chunk_size: Queries per chunk.

    Returns:
        One caption per query, as written in ``train_references``.

    Raises:
        ValueError: On mismatched shapes, ``k < 1``, or an image without references.
    """
    if query_features.dim() != 2 or train_features.dim() != 2 or query_features.shape[1] != train_features.shape[1]:
        raise ValueError(
            f"features must be (Q, D) and (N, D), got {tuple(query_features.shape)}, {tuple(train_features.shape)}"
        )
    if train_features.shape[0] != len(train_references):
        raise ValueError(f"{train_features.shape[0]} training features but {len(train_references)} reference lists")
    n_train = len(train_references)
    k = min(60, max(1, n_train // 100)) if k is None else k
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    k = min(k, n_train)
    table = _ngrams(train_references)
    vocab = len(table.order)
    unit = table.unit / math.sqrt(ORDERS)  # u_a . u_b = mean over orders of the cosines
    self_dot = torch.zeros(len(table.captions), dtype=torch.float64).index_add_(0, table.rows, unit**2)
    train = F.normalize(train_features.float(), dim=1)

    chosen = []
    for start in range(0, query_features.shape[0], chunk_size):
        queries = F.normalize(query_features[start : start + chunk_size].to(train).float(), dim=1)
        images = (queries @ train.T).topk(k, dim=1).indices.cpu().reshape(-1)  # nearest first
        n_refs = table.image_ptr[images + 1] - table.image_ptr[images]
        cands = _ragged_arange(table.image_ptr[images], n_refs)
        query = torch.repeat_interleave(torch.arange(len(queries)).repeat_interleave(k), n_refs)
        n_entries = table.caption_ptr[cands + 1] - table.caption_ptr[cands]
        entries = _ragged_arange(table.caption_ptr[cands], n_entries)
        pair = torch.repeat_interleave(torch.arange(len(cands)), n_entries)
        keys, slot = torch.unique(query[pair] * vocab + table.cols[entries], return_inverse=True)
        sums = torch.zeros(len(keys), dtype=torch.float64).index_add_(0, slot, unit[entries])
        score = torch.zeros(len(cands), dtype=torch.float64).index_add_(0, pair, unit[entries] * sums[slot])
        score -= self_dot[cands]
        best = torch.full((len(queries),), -math.inf, dtype=torch.float64).scatter_reduce(0, query, score, "amax")
        position = torch.where(score == best[query], torch.arange(len(cands)), len(cands))
        first = torch.full((len(queries),), len(cands)).scatter_reduce(0, query, position, "amin")
        chosen += [table.captions[int(c)] for c in cands[first]]
    return chosen
