"""Caption decoding: greedy search and batched beam search over any step decoder.

A *step decoder* (``LSTMDecoder``, ``AttentionLSTMDecoder``) provides ``init_state(features) -> state``,
``step(tokens [B], state) -> (logits [B, V], state)`` and ``reorder_state(state, index [B']) -> state``.

Output convention: returned tokens exclude ``<start>``, include ``<end>`` when it was produced, and are
``<pad>`` after it; a row without ``<end>`` hit ``max_len``. ``L`` (the number of columns) is the longest
returned caption, at most ``max_len``. The functions run under ``torch.no_grad`` and do not change the
decoder's train/eval mode: call ``decoder.eval()`` first. ``<pad>`` and ``<start>`` are never generated
(their log-probabilities are set to ``-inf`` without renormalising, so scores stay true log-probabilities).
"""

from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor


class StepDecoder(Protocol):
    """The step API that the decoding algorithms rely on."""

    def init_state(self, features: Tensor) -> Any:  # noqa: D102
        ...

    def step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]:  # noqa: D102
        ...

    def reorder_state(self, state: Any, index: Tensor) -> Any:  # noqa: D102
        ...


@torch.no_grad()
def greedy_decode(
    decoder: StepDecoder,
    features: Tensor,
    max_len: int,
    *,
    start_idx: int,
    end_idx: int,
    pad_idx: int,
) -> Tensor:
    """Pick the most likely token at every step, for the whole batch at once.

    Args:
        decoder: A step decoder.
        features: Image features [B, ...] as expected by ``decoder.init_state``.
        max_len: Maximum number of generated tokens (``<end>`` included).
        start_idx: Index of ``<start>``.
        end_idx: Index of ``<end>``.
        pad_idx: Index of ``<pad>``.

    Returns:
        Tokens [B, L], ``L <= max_len``; stops as soon as every row has produced ``<end>``.
    """
    B = features.size(0)
    state = decoder.init_state(features)
    tokens = torch.full((B,), start_idx, dtype=torch.long, device=features.device)
    ended = torch.zeros(B, dtype=torch.bool, device=features.device)
    banned = torch.tensor([pad_idx, start_idx], device=features.device)
    out = []
    for _ in range(max_len):
        logits, state = decoder.step(tokens, state)  # [B, V]
        logits = logits.index_fill(1, banned, float("-inf"))
        tokens = logits.argmax(dim=-1).masked_fill(ended, pad_idx)  # [B]
        out.append(tokens)
        ended |= tokens == end_idx
        if ended.all():
            break
    return torch.stack(out, dim=1)  # [B, L]


def length_normalize(log_prob: Tensor, length: int, alpha: float) -> Tensor:
    """Length-normalised score ``log_prob / length ** alpha`` (``alpha=0``: plain sum, 1: mean)."""
    return log_prob / (length**alpha)


class _Finished:
    """Up to ``K`` finished hypotheses per image, kept aside from the live beams with normalised scores."""

    def __init__(self, B: int, K: int, max_len: int, pad_idx: int, dtype: torch.dtype, device: torch.device):
        self.tokens = torch.full((B, K, max_len), pad_idx, dtype=torch.long, device=device)
        self.scores = torch.full((B, K), float("-inf"), dtype=dtype, device=device)
        self.lengths = torch.ones(B, K, dtype=torch.long, device=device)
        self.count = torch.zeros(B, dtype=torch.long, device=device)

    def add(self, image: Tensor, slot: Tensor, hyps: Tensor, log_prob: Tensor, alpha: float) -> None:
        """Store ``n`` hypotheses ``hyps`` [n, l] of images ``image`` [n] in free slots ``slot`` [n]."""
        length = hyps.size(1)
        self.tokens[image, slot, :length] = hyps
        self.scores[image, slot] = length_normalize(log_prob, length, alpha)
        self.lengths[image, slot] = length
        self.count.index_add_(0, image, torch.ones_like(image))

    def best(self) -> tuple[Tensor, Tensor]:
        """The best hypothesis per image: tokens [B, L] and normalised scores [B]."""
        best = self.scores.argmax(dim=1, keepdim=True)  # [B, 1]
        tokens = self.tokens[torch.arange(best.size(0), device=best.device), best.squeeze(1)]  # [B, max_len]
        length = int(self.lengths.gather(1, best).max())
        return tokens[:, :length], self.scores.gather(1, best).squeeze(1)  # [B, L], [B]


@torch.no_grad()
def beam_search(
    decoder: StepDecoder,
    features: Tensor,
    beam_width: int = 5,
    max_len: int = 20,
    length_penalty: float = 1.0,
    *,
    start_idx: int,
    end_idx: int,
    pad_idx: int,
) -> tuple[Tensor, Tensor]:
    """Batched beam search: all ``B`` images advance together as ``B * K`` hypotheses.

    At each step the ``2K`` best extensions of the ``K`` live beams of an image are ranked by their summed
    log-probability. An extension ending in ``<end>`` that ranks in the top ``K`` is moved to the image's
    finished set, scored ``sum log p / length ** length_penalty`` (``length`` counts the generated tokens
    including ``<end>``); the ``K`` best other extensions stay live. An image is done once it has ``K``
    finished hypotheses (fairseq-style stopping, so ``beam_width=1`` is exactly greedy decoding); done
    images are dropped from the batch. At ``max_len`` the live beams of unfinished images fill their free
    slots, scored the same way, and compete with the finished ones. The best hypothesis per image is
    returned.

    Args:
        decoder: A step decoder.
        features: Image features [B, ...] as expected by ``decoder.init_state``.
        beam_width: Number of beams ``K`` per image.
        max_len: Maximum number of generated tokens (``<end>`` included).
        length_penalty: Exponent ``alpha`` of the length normalisation (0: plain sum of log-probs).
        start_idx: Index of ``<start>``.
        end_idx: Index of ``<end>``.
        pad_idx: Index of ``<pad>``.

    Returns:
        ``(tokens, scores)``: tokens [B, L] (see module docstring) and normalised scores [B].
    """
    if beam_width < 1 or max_len < 1:
        raise ValueError(f"beam_width and max_len must be >= 1, got {beam_width} and {max_len}")
    B, K, device = features.size(0), beam_width, features.device
    dtype = torch.promote_types(features.dtype, torch.float32)  # accumulate log-probs in >= fp32
    images = torch.arange(B, device=device)  # original index of each image still in the batch [B']
    state = decoder.init_state(features)
    state = decoder.reorder_state(state, images.repeat_interleave(K))  # B -> B*K rows
    tokens = torch.full((B * K,), start_idx, dtype=torch.long, device=device)
    seqs = torch.empty(B, K, 0, dtype=torch.long, device=device)  # live hypotheses [B', K, t]
    scores = torch.zeros(B, K, dtype=dtype, device=device)  # summed log-probs of live beams [B', K]
    scores[:, 1:] = float("-inf")  # all beams start identical: keep only the first
    finished = _Finished(B, K, max_len, pad_idx, dtype, device)
    rank = torch.arange(2 * K, device=device)
    banned = torch.tensor([pad_idx, start_idx], device=device)

    for t in range(max_len):
        logits, state = decoder.step(tokens, state)  # [B'*K, V]
        V = logits.size(-1)
        log_probs = F.log_softmax(logits.to(dtype), dim=-1)  # [B'*K, V]
        log_probs[:, banned] = float("-inf")
        cand = (scores.unsqueeze(2) + log_probs.view(-1, K, V)).view(-1, K * V)  # [B', K*V]
        top_scores, top_idx = cand.topk(min(2 * K, K * V), dim=1)  # [B', 2K], best first
        beam, token = top_idx // V, top_idx % V  # [B', 2K]
        is_end = token == end_idx

        # Finished: <end> extensions ranked in the top K, while the image has free slots.
        accept = is_end & (rank[: is_end.size(1)] < K) & top_scores.isfinite()  # [B', 2K]
        slot = finished.count[images].unsqueeze(1) + accept.long().cumsum(dim=1) - 1  # [B', 2K]
        i, j = (accept & (slot < K)).nonzero(as_tuple=True)  # [n], [n]
        if i.numel() > 0:
            hyps = torch.cat([seqs[i, beam[i, j]], token[i, j].unsqueeze(1)], dim=1)  # [n, t+1]
            finished.add(images[i], slot[i, j], hyps, top_scores[i, j], length_penalty)

        # Live: the K best extensions that do not end (a stable sort keeps the score order).
        keep = is_end.long().argsort(dim=1, stable=True)[:, :K]  # [B', K]
        beam, token, scores = beam.gather(1, keep), token.gather(1, keep), top_scores.gather(1, keep)
        seqs = torch.cat([seqs.gather(1, beam.unsqueeze(2).expand(-1, -1, t)), token.unsqueeze(2)], dim=2)

        if t == max_len - 1:  # unfinished images: live beams fill the free slots
            free = K - finished.count[images]  # [B']
            i, k = (torch.arange(K, device=device) < free.unsqueeze(1)).nonzero(as_tuple=True)  # [n], [n]
            slot = finished.count[images[i]] + k
            finished.add(images[i], slot, seqs[i, k], scores[i, k], length_penalty)
            break
        # Drop images that have K finished hypotheses and reorder the state of the others.
        alive = finished.count[images] < K  # [B']
        if not alive.any():
            break
        rows = alive.nonzero().squeeze(1)  # [B'']
        images, seqs, scores, beam, token = images[rows], seqs[rows], scores[rows], beam[rows], token[rows]
        state = decoder.reorder_state(state, (rows.unsqueeze(1) * K + beam).view(-1))  # B''*K rows
        tokens = token.reshape(-1)  # [B''*K]

    return finished.best()


def beam_search_one_by_one(
    decoder: StepDecoder,
    features: Tensor,
    beam_width: int = 5,
    max_len: int = 20,
    length_penalty: float = 1.0,
    *,
    start_idx: int,
    end_idx: int,
    pad_idx: int,
) -> tuple[Tensor, Tensor]:
    """Reference: :func:`beam_search` on each image separately (B=1 slices); same arguments and outputs."""
    results = [
        beam_search(
            decoder,
            features[i : i + 1],
            beam_width,
            max_len,
            length_penalty,
            start_idx=start_idx,
            end_idx=end_idx,
            pad_idx=pad_idx,
        )
        for i in range(features.size(0))
    ]
    L = max(tokens.size(1) for tokens, _ in results)
    tokens = torch.cat([F.pad(tok, (0, L - tok.size(1)), value=pad_idx) for tok, _ in results])  # [B, L]
    return tokens, torch.cat([score for _, score in results])  # [B, L], [B]
