"""Caption decoding: greedy search, batched beam search and sampling over any step decoder.

A *step decoder* (``LSTMDecoder``, ``AttentionLSTMDecoder``) provides ``init_state(features) -> state``,
``step(tokens [B], state) -> (logits [B, V], state)`` and ``reorder_state(state, index [B']) -> state``.

Output convention: returned tokens exclude ``<start>``, include ``<end>`` when it was produced, and are
``<pad>`` after it; a row without ``<end>`` hit ``max_len``. ``L`` (the number of columns) is the longest
returned caption, at most ``max_len``. The functions run under ``torch.no_grad`` and do not change the
decoder's train/eval mode: call ``decoder.eval()`` first.

Banned tokens: ``<pad>`` and ``<start>`` (and ``<unk>`` when ``unk_idx`` is given) are never generated, and
the optional constraints ``min_len``, ``no_repeat_ngram`` and ``banned_endings`` forbid more extensions. A
banned extension gets log-probability ``-inf`` without renormalising the others, so scores stay true
log-probabilities of the model.

:class:`Decoding` holds a captioner's choice of algorithm and constraints (``model.decoding`` in a config) and
applies it with the vocabulary's token ids.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import torch
import torch.nn.functional as F
from jsonargparse.typing import NonNegativeInt, PositiveInt
from torch import Tensor

from vlc.errors import UserError

if TYPE_CHECKING:
    from vlc.vocabulary import Vocabulary


class StepDecoder(Protocol):
    """The step API that the decoding algorithms rely on."""

    def init_state(self, features: Tensor) -> Any:  # noqa: D102
        ...

    def step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]:  # noqa: D102
        ...

    def reorder_state(self, state: Any, index: Tensor) -> Any:  # noqa: D102
        ...


@torch.no_grad()
def greedy_decode(decoder: StepDecoder, features: Tensor, max_len: int, **kwargs: Any) -> Tensor:
    """Pick the most likely allowed token at every step, for the whole batch at once.

    This is :func:`beam_search` with one beam and no length normalisation, which is exactly greedy decoding:
    with ``length_penalty=0`` an ``<end>`` ranked first beats every continuation, so a row stops there.

    Args:
        decoder: A step decoder.
        features: Image features [B, ...] as expected by ``decoder.init_state``.
        max_len: Maximum number of generated tokens (``<end>`` included).
        **kwargs: The keyword-only arguments of :func:`beam_search` (``start_idx``, ``end_idx``, ``pad_idx``
            are required; ``unk_idx`` and the constraints are optional; not ``num_return``).

    Returns:
        Tokens [B, L], ``L <= max_len``; stops as soon as every row has produced ``<end>``.
    """
    return beam_search(decoder, features, 1, max_len, 0.0, **kwargs)[0]


def length_normalize(log_prob: Tensor, length: int, alpha: float) -> Tensor:
    """Length-normalised score ``log_prob / length ** alpha`` (``alpha=0``: plain sum, 1: mean)."""
    return log_prob / (length**alpha)


def _ban(
    log_probs: Tensor,
    seqs: Tensor,
    banned: Tensor,
    *,
    end_idx: int,
    pad_idx: int,
    min_len: int,
    no_repeat_ngram: int,
    banned_endings: Tensor,
) -> Tensor:
    """Set the log-probabilities [N, V] of the forbidden next tokens of hypotheses ``seqs`` [N, t] to ``-inf``."""
    t, n, inf = seqs.size(1), no_repeat_ngram, float("-inf")
    log_probs[:, banned] = inf
    if t + 1 < min_len:  # <end> would be token t + 1
        log_probs[:, end_idx] = inf
    if t > 0 and banned_endings.numel() > 0:
        log_probs[:, end_idx].masked_fill_(torch.isin(seqs[:, -1], banned_endings), inf)
    if 0 < n <= t:  # the hypothesis holds at least one n-gram
        grams = seqs.unfold(1, n, 1)  # [N, t-n+1, n]
        seen = (grams[:, :, :-1] == seqs[:, t - n + 1 :].unsqueeze(1)).all(dim=2)  # prefix == tail [N, t-n+1]
        # Ban the last token of the n-grams whose prefix is the current tail; the others hit <pad>, banned anyway.
        log_probs.scatter_(1, grams[:, :, -1].masked_fill(~seen, pad_idx), inf)
    return log_probs


def _keep_best(
    tokens: Tensor, scores: Tensor, new_tokens: Tensor, new_scores: Tensor, pad_idx: int
) -> tuple[Tensor, Tensor]:
    """Merge kept hypotheses (tokens [B', K, max_len], scores [B', K]) with new ones ([B', C, l], [B', C]).

    Returns the ``K`` best by normalised score, best first: tokens [B', K, max_len] and scores [B', K].
    """
    K, max_len = tokens.shape[1:]
    new_tokens = F.pad(new_tokens, (0, max_len - new_tokens.size(2)), value=pad_idx)  # [B', C, max_len]
    scores, best = torch.cat([scores, new_scores], dim=1).topk(K, dim=1)  # [B', K]
    tokens = torch.cat([tokens, new_tokens], dim=1).gather(1, best.unsqueeze(2).expand(-1, -1, max_len))
    return tokens, scores


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
    unk_idx: int | None = None,
    min_len: int = 1,
    no_repeat_ngram: int = 0,
    banned_endings: Sequence[int] = (),
    num_return: int = 1,
) -> tuple[Tensor, Tensor]:
    """Batched beam search: all ``B`` images advance together as ``B * K`` hypotheses.

    A caption of ``l`` generated tokens (``<end>`` included) with summed log-probability ``s`` scores
    ``s / l ** alpha``, ``alpha = length_penalty``. At each step the ``2K`` best extensions of the ``K`` live
    beams of an image are ranked by summed log-probability. The ``<end>`` extensions ranked in the top ``K``
    are finished candidates (lower ones are dropped, as in fairseq and Hugging Face): the image keeps its
    ``K`` best finished captions by score, so a better candidate replaces the worst kept one. The ``K`` best
    extensions that do not end stay live. At ``max_len`` the live beams are finished candidates too (cut
    without ``<end>``, ``l = max_len``).

    Early stopping: log-probabilities are ``<= 0``, so a live beam with summed log-probability ``s`` that has
    ``t`` tokens can only finish with length ``l`` in ``(t, max_len]`` and sum ``s' <= s``, scoring
    ``s' / l ** alpha <= s / l ** alpha <= s / max_len ** alpha`` for ``alpha >= 0`` (dividing ``s <= 0`` by
    more gives more; ``s / (t + 1) ** alpha`` for ``alpha < 0``). An image stops, and leaves the batch, once
    this bound for its best live beam is ``<=`` its worst kept score: nothing left can enter its top ``K``,
    so stopping early returns what running on to ``max_len`` would. (Stopping at ``K`` finished captions,
    fairseq-style, is not exact, not even for ``alpha = 0``.) ``beam_width=1`` with ``length_penalty=0`` is
    exactly greedy decoding; with ``length_penalty > 0`` it may go on past a first-ranked ``<end>``.

    Args:
        decoder: A step decoder.
        features: Image features [B, ...] as expected by ``decoder.init_state``.
        beam_width: Number of beams ``K`` per image.
        max_len: Maximum number of generated tokens (``<end>`` included).
        length_penalty: Exponent ``alpha`` of the length normalisation (0: plain sum of log-probs).
        start_idx: Index of ``<start>``.
        end_idx: Index of ``<end>``.
        pad_idx: Index of ``<pad>``.
        unk_idx: Index of ``<unk>``, never generated; ``None``: ``<unk>`` is an ordinary token.
        min_len: Minimum length of a caption that ends with ``<end>``, ``<end>`` included: ``<end>`` may be
            generated as token number ``min_len`` at the earliest (1: no constraint). Captions cut at
            ``max_len`` are not affected.
        no_repeat_ngram: ``n > 0``: no n-gram of generated tokens occurs twice in a hypothesis (an extension
            that would repeat one is banned, as Hugging Face's ``no_repeat_ngram_size``); 0: no constraint.
        banned_endings: Token ids that ``<end>`` may not directly follow (e.g. "a", "the", "of").
        num_return: Number ``R <= K`` of captions returned per image, best first.

    Returns:
        ``(tokens, scores)``: with ``num_return=1`` tokens [B, L] (see module docstring) and normalised scores
        [B]; otherwise tokens [B, R, L] and scores [B, R], best first. An image has fewer than ``R`` captions
        only when fewer valid sequences exist (tiny vocabularies, contradictory constraints): the missing
        rows are all ``<pad>`` with score ``-inf``.
    """
    if beam_width < 1 or max_len < 1 or min_len < 1 or no_repeat_ngram < 0:
        raise ValueError(
            f"need beam_width, max_len, min_len >= 1 and no_repeat_ngram >= 0, got {beam_width}, "
            f"{max_len}, {min_len}, {no_repeat_ngram}"
        )
    if not 1 <= num_return <= beam_width:
        raise ValueError(f"num_return must be in [1, beam_width={beam_width}], got {num_return}")
    B, K, alpha, device = features.size(0), beam_width, length_penalty, features.device
    dtype = torch.promote_types(features.dtype, torch.float32)  # accumulate log-probs in >= fp32
    images = torch.arange(B, device=device)  # original index of each image still in the batch [B']
    state = decoder.init_state(features)
    state = decoder.reorder_state(state, images.repeat_interleave(K))  # B -> B*K rows
    tokens = torch.full((B * K,), start_idx, dtype=torch.long, device=device)
    seqs = torch.empty(B, K, 0, dtype=torch.long, device=device)  # live hypotheses [B', K, t]
    scores = torch.zeros(B, K, dtype=dtype, device=device)  # summed log-probs of live beams [B', K]
    scores[:, 1:] = float("-inf")  # all beams start identical: keep only the first
    fin_tokens = torch.full((B, K, max_len), pad_idx, dtype=torch.long, device=device)  # kept finished captions
    fin_scores = torch.full((B, K), float("-inf"), dtype=dtype, device=device)  # their scores, best first
    banned = torch.tensor([pad_idx, start_idx] + ([] if unk_idx is None else [unk_idx]), device=device)
    rules = {"end_idx": end_idx, "pad_idx": pad_idx, "min_len": min_len, "no_repeat_ngram": no_repeat_ngram}
    rules["banned_endings"] = torch.tensor(banned_endings, dtype=torch.long, device=device)

    for t in range(max_len):
        logits, state = decoder.step(tokens, state)  # [B'*K, V]
        V = logits.size(-1)
        log_probs = _ban(F.log_softmax(logits.to(dtype), dim=-1), seqs.flatten(0, 1), banned, **rules)
        cand = (scores.unsqueeze(2) + log_probs.view(-1, K, V)).view(-1, K * V)  # [B', K*V]
        top_scores, top_idx = cand.topk(min(2 * K, K * V), dim=1)  # [B', 2K], best first
        beam, token = top_idx // V, top_idx % V  # [B', 2K]
        is_end = token == end_idx

        # Finished candidates: <end> extensions ranked in the top K, merged into the K best kept.
        hyps = torch.cat([seqs.gather(1, beam[:, :K, None].expand(-1, -1, t)), token[:, :K, None]], dim=2)
        ended = torch.where(is_end[:, :K], length_normalize(top_scores[:, :K], t + 1, alpha), float("-inf"))  # [B', K]
        kept = _keep_best(fin_tokens[images], fin_scores[images], hyps, ended, pad_idx)
        fin_tokens[images], fin_scores[images] = kept

        # Live: the K best extensions that do not end (a stable sort keeps the score order).
        keep = is_end.long().argsort(dim=1, stable=True)[:, :K]  # [B', K]
        beam, token, scores = beam.gather(1, keep), token.gather(1, keep), top_scores.gather(1, keep)
        seqs = torch.cat([seqs.gather(1, beam.unsqueeze(2).expand(-1, -1, t)), token.unsqueeze(2)], dim=2)

        if t == max_len - 1:  # the live beams, cut at max_len, are finished candidates too
            kept = _keep_best(
                fin_tokens[images], fin_scores[images], seqs, length_normalize(scores, max_len, alpha), pad_idx
            )
            fin_tokens[images], fin_scores[images] = kept
            break
        # Stop images whose best live beam cannot beat their worst kept caption; reorder the others' state.
        bound = scores[:, 0] / max((t + 2) ** alpha, max_len**alpha)  # [B'], see the docstring
        alive = bound > fin_scores[images, -1]  # [B']
        if not alive.any():
            break
        rows = alive.nonzero().squeeze(1)  # [B'']
        images, seqs, scores, beam, token = images[rows], seqs[rows], scores[rows], beam[rows], token[rows]
        state = decoder.reorder_state(state, (rows.unsqueeze(1) * K + beam).view(-1))  # B''*K rows
        tokens = token.reshape(-1)  # [B''*K]

    tokens, scores = fin_tokens[:, :num_return], fin_scores[:, :num_return]  # [B, R, max_len], [B, R]
    tokens = tokens.masked_fill(scores.isneginf().unsqueeze(2), pad_idx)  # slots that no caption filled
    L = max(int((tokens != pad_idx).sum(dim=2).max()), 1)
    tokens = tokens[:, :, :L]  # [B, R, L]
    return (tokens[:, 0], scores[:, 0]) if num_return == 1 else (tokens, scores)


def sample_captions(
    decoder: StepDecoder,
    features: Tensor,
    max_len: int,
    *,
    start_idx: int,
    end_idx: int,
    pad_idx: int,
    unk_idx: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Draw one caption per row of ``features`` from the decoder's distribution, keeping the graph.

    The sampling of self-critical training (``vlc.tasks.scst``): at every step the next token is drawn from
    ``softmax(logits)`` (``torch.multinomial``, so from torch's global generator: seeded per training step by
    ``vlc.callbacks.StepSeed``), ``<pad>``, ``<start>`` (and ``<unk>`` when ``unk_idx`` is given) never. Unlike
    greedy and beam search, this runs with gradients and in the decoder's current mode (dropout on in training).

    Args:
        decoder: A step decoder.
        features: Image features [B, ...] as expected by ``decoder.init_state`` (repeat rows for several samples).
        max_len: Maximum number of drawn tokens (``<end>`` included).
        start_idx: Index of ``<start>``.
        end_idx: Index of ``<end>``.
        pad_idx: Index of ``<pad>``.
        unk_idx: Index of ``<unk>``, never drawn; ``None``: an ordinary token.

    Returns:
        ``(tokens, log_probs)``: tokens [B, L] (the module's output convention: ``<end>`` included, ``<pad>``
        after it) and each drawn token's log-probability [B, L] in float32, 0 after ``<end>``; ``L <= max_len``.
    """
    B, device = features.size(0), features.device
    banned = torch.tensor([pad_idx, start_idx] + ([] if unk_idx is None else [unk_idx]), device=device)
    state = decoder.init_state(features)
    token = torch.full((B,), start_idx, dtype=torch.long, device=device)
    alive = torch.ones(B, dtype=torch.bool, device=device)  # rows that have not drawn <end> yet [B]
    tokens, log_probs = [], []
    for _ in range(max_len):
        logits, state = decoder.step(token, state)  # [B, V]
        log_p = F.log_softmax(logits.float(), dim=-1).index_fill(1, banned, float("-inf"))  # [B, V]
        token = torch.multinomial(log_p.detach().exp(), 1).squeeze(1)  # [B]
        token = token.masked_fill(~alive, pad_idx)
        tokens.append(token)
        log_probs.append(log_p.gather(1, token.unsqueeze(1)).squeeze(1).masked_fill(~alive, 0.0))  # [B]
        alive = alive & (token != end_idx)
        if not alive.any():
            break
    return torch.stack(tokens, dim=1), torch.stack(log_probs, dim=1)  # [B, L], [B, L]


def beam_search_one_by_one(
    decoder: StepDecoder,
    features: Tensor,
    beam_width: int = 5,
    max_len: int = 20,
    length_penalty: float = 1.0,
    **kwargs: Any,
) -> tuple[Tensor, Tensor]:
    """Reference: :func:`beam_search` on each image separately (B=1 slices); same arguments and outputs."""
    results = [
        beam_search(decoder, features[i : i + 1], beam_width, max_len, length_penalty, **kwargs)
        for i in range(features.size(0))
    ]
    L = max(tokens.size(-1) for tokens, _ in results)
    pad = kwargs["pad_idx"]
    tokens = torch.cat([F.pad(tok, (0, L - tok.size(-1)), value=pad) for tok, _ in results])  # [B, (R,) L]
    return tokens, torch.cat([score for _, score in results])  # [B, (R,) L], [B, (R)]


@dataclass(frozen=True)
class Decoding:
    """How a captioner generates captions for validation, test and prediction (``model.decoding`` in a config).

    In YAML ``decoding: {strategy: beam, beam_width: 5, max_len: 22}``, on the command line
    ``--model.decoding.beam_width 3``; given with ``--ckpt_path``, these values replace the checkpoint's.

    Args:
        strategy: ``greedy`` or ``beam`` (batched beam search, :func:`beam_search`); ``<unk>`` is never generated.
        beam_width: beams per image for ``beam``.
        max_len: longest generated caption in tokens (``<end>`` included).
        length_penalty: beam scores are ``sum log p / length ** length_penalty`` (0: no normalisation); an image's
            search runs until no live beam can beat its kept captions. Greedy captions are scored the same way.
        min_len: no ``<end>`` before this many tokens (``<end>`` included).
        no_repeat_ngram: with N > 0, no caption repeats an N-gram of its words.
        banned_endings: words a caption may not end on, such as ``[a, an, the, of]``.
        num_captions: ``vlc predict`` writes this many best captions per image with their scores (``beam`` with
            ``beam_width`` at least as large).

    Raises:
        UserError: a value out of range (the command line checks the types first), or ``num_captions`` above what
            the strategy keeps; the message names the key (``model.decoding.<field>``).
    """

    strategy: Literal["greedy", "beam"] = "greedy"
    beam_width: PositiveInt = 5
    max_len: PositiveInt = 20
    length_penalty: float = 1.0
    min_len: PositiveInt = 1
    no_repeat_ngram: NonNegativeInt = 0
    banned_endings: list[str] = field(default_factory=list)
    num_captions: PositiveInt = 1

    def __post_init__(self) -> None:
        minimum = {"beam_width": 1, "max_len": 1, "min_len": 1, "num_captions": 1, "no_repeat_ngram": 0}
        for name, least in minimum.items():
            if getattr(self, name) < least:
                raise UserError(f"model.decoding.{name}: expected at least {least}, got {getattr(self, name)}")
        if self.num_captions > (self.beam_width if self.strategy == "beam" else 1):
            raise UserError(
                f"model.decoding.num_captions: {self.num_captions} captions need strategy: beam with a beam_width "
                f"of at least {self.num_captions} (got strategy: {self.strategy}, beam_width: {self.beam_width})"
            )

    def search(
        self, decoder: StepDecoder, features: Tensor, vocab: "Vocabulary", num_return: int = 1
    ) -> tuple[Tensor, Tensor]:
        """Decode ``features`` with these options and ``vocab``'s token ids (``decoder`` in eval mode).

        Greedy is :func:`beam_search` with one beam and no normalisation; its captions are then scored as beam
        search scores them, normalised by ``length ** length_penalty``.

        Returns:
            ``(tokens, scores)`` as :func:`beam_search` returns them: ``(B, L)`` and ``(B,)``, or ``(B, R, L)``
            and ``(B, R)`` with ``num_return = R > 1``.
        """
        greedy = self.strategy == "greedy"
        width, alpha = (1, 0.0) if greedy else (self.beam_width, self.length_penalty)
        rules = {"start_idx": vocab.START, "end_idx": vocab.END, "pad_idx": vocab.PAD, "unk_idx": vocab.UNK}
        rules.update(min_len=self.min_len, no_repeat_ngram=self.no_repeat_ngram, num_return=num_return)
        rules["banned_endings"] = [vocab.index(word) for word in self.banned_endings]
        tokens, scores = beam_search(decoder, features, width, self.max_len, alpha, **rules)  # (B, [R,] L), (B, [R])
        if greedy:
            scores = length_normalize(scores, (tokens != vocab.PAD).sum(dim=-1), self.length_penalty)
        return tokens, scores
