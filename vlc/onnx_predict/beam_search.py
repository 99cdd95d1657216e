"""Greedy and batched beam search in numpy over any step function: ``vlc.models.decoding.beam_search`` without torch.

The same algorithm, step for step, so that the exported captioner finds the captions ``vlc predict`` finds: the
``2K`` best extensions of an image's ``K`` live beams ranked by summed log-probability, the ``<end>`` extensions in
the top ``K`` merged into the ``K`` best finished captions by ``sum / length ** length_penalty``, early stopping once
no live beam can beat the worst kept caption, and the constraints ``min_len``, ``no_repeat_ngram`` and
``banned_endings`` (a banned extension gets ``-inf``, the others are not renormalised). Greedy is one beam with no
normalisation, its captions then scored with it. Scores accumulate in float32, as torch's do.

A *step* is ``step(tokens (M,), state, rows (M,)) -> (log_probs (M, V) float32, state)``: ``state`` maps names to
arrays with one row per hypothesis (axis 0), and ``rows`` gives each hypothesis's image, for the per-image memory.
"""

from collections.abc import Callable, Sequence

import numpy as np

Step = Callable[[np.ndarray, dict[str, np.ndarray], np.ndarray], tuple[np.ndarray, dict[str, np.ndarray]]]
NEG_INF = np.float32(-np.inf)


def _top(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest values of each row and their columns, largest first (ties: the lower column first)."""
    index = np.argsort(-values, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(values, index, axis=1), index


def _ban(
    log_probs: np.ndarray,
    seqs: np.ndarray,
    banned: np.ndarray,
    end_idx: int,
    pad_idx: int,
    min_len: int,
    no_repeat_ngram: int,
    banned_endings: np.ndarray,
) -> np.ndarray:
    """Set the log-probabilities ``(N, V)`` of the forbidden next tokens of hypotheses ``seqs`` ``(N, t)`` to -inf."""
    t, n = seqs.shape[1], no_repeat_ngram
    log_probs[:, banned] = NEG_INF
    if t + 1 < min_len:  # <end> would be token t + 1
        log_probs[:, end_idx] = NEG_INF
    if t > 0 and banned_endings.size:
        log_probs[np.isin(seqs[:, -1], banned_endings), end_idx] = NEG_INF
    if 0 < n <= t:  # the hypothesis holds at least one n-gram
        grams = np.lib.stride_tricks.sliding_window_view(seqs, n, axis=1)  # (N, t-n+1, n)
        seen = (grams[:, :, :-1] == seqs[:, None, t - n + 1 :]).all(axis=2)  # prefix == tail (N, t-n+1)
        np.put_along_axis(log_probs, np.where(seen, grams[:, :, -1], pad_idx), NEG_INF, axis=1)
    return log_probs


def _keep_best(
    tokens: np.ndarray, scores: np.ndarray, new_tokens: np.ndarray, new_scores: np.ndarray, pad_idx: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``K`` best of kept (``(B', K, max_len)``, ``(B', K)``) and new (``(B', C, l)``, ``(B', C)``) hypotheses."""
    K, max_len = tokens.shape[1:]
    pad = np.full((*new_tokens.shape[:2], max_len - new_tokens.shape[2]), pad_idx, dtype=np.int64)
    new_tokens = np.concatenate([new_tokens, pad], axis=2)  # (B', C, max_len)
    scores, best = _top(np.concatenate([scores, new_scores], axis=1), K)  # (B', K)
    tokens = np.take_along_axis(np.concatenate([tokens, new_tokens], axis=1), best[:, :, None], axis=1)
    return tokens, scores


def _normalize(log_prob: np.ndarray, length: float | np.ndarray, alpha: float) -> np.ndarray:
    """``log_prob / length ** alpha`` in float32.

    As torch computes it: a scalar's power in float64 then cast to float32, an array's in float32.
    """
    if isinstance(length, int):
        return (log_prob / np.float32(length**alpha)).astype(np.float32)
    return (log_prob / (np.asarray(length, dtype=np.float32) ** np.float32(alpha))).astype(np.float32)


def beam_search(
    step: Step,
    state: dict[str, np.ndarray],
    beam_width: int = 5,
    max_len: int = 20,
    length_penalty: float = 1.0,
    *,
    start_idx: int,
    end_idx: int,
    pad_idx: int,
    unk_idx: int | None = None,
    min_len: int = 1,
    no_repeat_ngram: int = 0,
    banned_endings: Sequence[int] = (),
    num_return: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Batched beam search from the initial ``state`` (one row per image); see the module docstring.

    Returns:
        ``(tokens, scores)``: tokens ``(B, R, L)`` int64 (no ``<start>``, ``<end>`` when produced, ``<pad>`` after
        it) and normalised scores ``(B, R)``, best first, ``R = num_return``; a slot no caption filled is all
        ``<pad>`` with score ``-inf``.
    """
    B, K, alpha = next(iter(state.values())).shape[0], beam_width, length_penalty
    images = np.arange(B)  # original index of each image still in the batch (B',)
    rows = images.repeat(K)  # the image of each hypothesis (B'*K,)
    state = {name: value[rows] for name, value in state.items()}
    tokens = np.full(B * K, start_idx, dtype=np.int64)
    seqs = np.empty((B, K, 0), dtype=np.int64)  # live hypotheses (B', K, t)
    scores = np.zeros((B, K), dtype=np.float32)  # summed log-probs of live beams
    scores[:, 1:] = NEG_INF  # all beams start identical: keep only the first
    fin_tokens = np.full((B, K, max_len), pad_idx, dtype=np.int64)
    fin_scores = np.full((B, K), NEG_INF, dtype=np.float32)
    banned = np.array([pad_idx, start_idx] + ([] if unk_idx is None else [unk_idx]))
    rules = (end_idx, pad_idx, min_len, no_repeat_ngram, np.asarray(banned_endings, dtype=np.int64))

    for t in range(max_len):
        log_probs, state = step(tokens, state, rows)  # (B'*K, V)
        V = log_probs.shape[1]
        log_probs = _ban(log_probs.astype(np.float32), seqs.reshape(len(seqs) * K, t), banned, *rules)
        cand = (scores[:, :, None] + log_probs.reshape(-1, K, V)).reshape(-1, K * V)  # (B', K*V)
        top_scores, top_idx = _top(cand, min(2 * K, K * V))  # (B', 2K)
        beam, token = top_idx // V, top_idx % V
        is_end = token == end_idx

        # finished candidates: <end> extensions ranked in the top K, merged into the K best kept
        hyps = np.concatenate([np.take_along_axis(seqs, beam[:, :K, None], axis=1), token[:, :K, None]], axis=2)
        ended = np.where(is_end[:, :K], _normalize(top_scores[:, :K], t + 1, alpha), NEG_INF)
        fin_tokens[images], fin_scores[images] = _keep_best(
            fin_tokens[images], fin_scores[images], hyps, ended, pad_idx
        )

        # live: the K best extensions that do not end (a stable sort keeps the score order)
        keep = np.argsort(is_end, axis=1, kind="stable")[:, :K]
        beam, token = np.take_along_axis(beam, keep, axis=1), np.take_along_axis(token, keep, axis=1)
        scores = np.take_along_axis(top_scores, keep, axis=1)
        seqs = np.concatenate([np.take_along_axis(seqs, beam[:, :, None], axis=1), token[:, :, None]], axis=2)

        if t == max_len - 1:  # the live beams, cut at max_len, are finished candidates too
            cut = _normalize(scores, max_len, alpha)
            fin_tokens[images], fin_scores[images] = _keep_best(
                fin_tokens[images], fin_scores[images], seqs, cut, pad_idx
            )
            break
        # stop images whose best live beam cannot beat their worst kept caption; reorder the others' state
        bound = scores[:, 0] / np.float32(max((t + 2) ** alpha, max_len**alpha))
        alive = bound > fin_scores[images, -1]
        if not alive.any():
            break
        keep_images = np.flatnonzero(alive)
        images, seqs, scores = images[keep_images], seqs[keep_images], scores[keep_images]
        index = (keep_images[:, None] * K + beam[keep_images]).reshape(-1)  # (B''*K,)
        state = {name: value[index] for name, value in state.items()}
        rows, tokens = rows[index], token[keep_images].reshape(-1)

    tokens, scores = fin_tokens[:, :num_return], fin_scores[:, :num_return]  # (B, R, max_len), (B, R)
    tokens = np.where(np.isneginf(scores)[:, :, None], pad_idx, tokens)
    L = max(int((tokens != pad_idx).sum(axis=2).max(initial=0)), 1)
    return tokens[:, :, :L], scores


def search(step: Step, state: dict[str, np.ndarray], decoding: dict, vocab: dict[str, int], num_return: int = 1):
    """``decoding`` (the fields of ``vlc.models.decoding.Decoding``) applied with ``vocab``'s special ids.

    Returns:
        ``(tokens (B, R, L), scores (B, R))``; greedy captions scored by ``length ** length_penalty``.
    """
    greedy = decoding["strategy"] == "greedy"
    width, alpha = (1, 0.0) if greedy else (decoding["beam_width"], decoding["length_penalty"])
    tokens, scores = beam_search(
        step,
        state,
        width,
        decoding["max_len"],
        alpha,
        start_idx=vocab["<start>"],
        end_idx=vocab["<end>"],
        pad_idx=vocab["<pad>"],
        unk_idx=vocab["<unk>"],
        min_len=decoding["min_len"],
        no_repeat_ngram=decoding["no_repeat_ngram"],
        banned_endings=[vocab[word] for word in decoding["banned_endings"]],
        num_return=num_return,
    )
    if greedy:
        scores = _normalize(scores, (tokens != vocab["<pad>"]).sum(axis=-1), decoding["length_penalty"])
    return tokens, scores
