import itertools

import pytest
import torch
import torch.nn.functional as F

from vlc.models.attention_decoder import AttentionLSTMDecoder
from vlc.models.decoding import beam_search, beam_search_one_by_one, greedy_decode
from vlc.models.lstm_decoder import LSTMDecoder

V, FEAT, N = 12, 16, 5
PAD, START, END, UNK = 0, 1, 2, 3
IDS = {"start_idx": START, "end_idx": END, "pad_idx": PAD}
KINDS = ["lstm", "attention"]
SMALL_V, WORDS = 7, [4, 5, 6]  # tiny vocabulary for brute force: 4 specials and 3 words
ALL_OPTIONS = {"unk_idx": UNK, "min_len": 3, "no_repeat_ngram": 2, "banned_endings": (4, 5)}


def random_decoder(kind: str, seed: int, end_bias: float = 1.0, vocab: int = V, biases: dict | None = None):
    """An untrained decoder with spread-out weights, so captions differ per image and end at various steps."""
    torch.manual_seed(seed)
    if kind == "lstm":
        decoder = LSTMDecoder(vocab, FEAT, PAD, embed_dim=8, hidden_dim=16)
        out = decoder.fc
    else:
        decoder = AttentionLSTMDecoder(vocab, FEAT, PAD, embed_dim=8, hidden_dim=16, attention_dim=8)
        out = decoder.L_o
    with torch.no_grad():
        for p in decoder.parameters():
            p.normal_(0.0, 0.5)
        out.bias[END] += end_bias
        for token, bias in (biases or {}).items():
            out.bias[token] += bias
    return decoder.eval()


def random_features(kind: str, batch: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (batch, FEAT) if kind == "lstm" else (batch, N, FEAT)
    return torch.randn(shape, generator=g)


class BigramDecoder:
    """A step decoder whose "features" are per-image bigram logit tables [B, V, V]: logits = table[previous]."""

    def init_state(self, tables):
        return tables

    def step(self, tokens, tables):
        return tables[torch.arange(tokens.size(0)), tokens], tables

    def reorder_state(self, tables, index):
        return tables[index]

    def __call__(self, tables, inputs):  # teacher forcing: [B, L] -> logits [B, L, V]
        return tables.gather(1, inputs.unsqueeze(2).expand(-1, -1, tables.size(2)))


def sequence_log_prob(decoder, features, tokens) -> torch.Tensor:
    """Summed log-probability of ``tokens`` [B, L] (padding after <end> ignored) via teacher forcing."""
    inputs = torch.cat([torch.full_like(tokens[:, :1], START), tokens[:, :-1]], dim=1)  # [B, L]
    log_probs = F.log_softmax(decoder(features, inputs), dim=-1)  # [B, L, V]
    picked = log_probs.gather(2, tokens.unsqueeze(2)).squeeze(2)  # [B, L]
    return picked.masked_fill(tokens == PAD, 0.0).sum(dim=1)


def trim(row: list) -> list:
    """A caption as a list without the <pad> after it."""
    return [tok for tok in row if tok != PAD]


def argmax_decode(decoder, features, max_len):
    """Plain greedy decoding: the arg-max token (never <pad> or <start>) at every step, until every row ended."""
    state = decoder.init_state(features)
    tokens = torch.full((features.size(0),), START)
    ended, out = torch.zeros(features.size(0), dtype=torch.bool), []
    for _ in range(max_len):
        logits, state = decoder.step(tokens, state)
        logits[:, [PAD, START]] = float("-inf")
        tokens = logits.argmax(dim=-1).masked_fill(ended, PAD)
        out.append(tokens)
        ended |= tokens == END
        if ended.all():
            break
    return torch.stack(out, dim=1)


def reference_beam_search(decoder, feature, beam_width, max_len, length_penalty, old_rule=False):
    """Slow list-based beam search for one image [1, ...], written independently of ``beam_search``.

    It never stops early: it runs to ``max_len`` and keeps the ``beam_width`` best finished captions, so an exact
    early-stopping rule gives the same n-best. ``old_rule``: the previous rule, keep the first ``beam_width``
    finished captions and stop (its best caption is the old ``beam_search``'s). Returns [(score, tokens)], best
    first.
    """
    K = beam_width
    beams, finished = [([], 0.0, decoder.init_state(feature))], []
    for t in range(max_len):
        candidates = []
        for tokens, score, state in beams:
            prev = torch.tensor([tokens[-1] if tokens else START])
            logits, next_state = decoder.step(prev, state)
            log_probs = F.log_softmax(logits[0].double(), dim=-1).tolist()
            candidates += [
                (score + lp, tokens + [v], next_state)
                for v, lp in enumerate(log_probs)
                if v not in (PAD, START)  # never generated
            ]
        candidates = sorted(candidates, key=lambda c: -c[0])[: 2 * K]
        beams = []
        for rank, (score, tokens, state) in enumerate(candidates):
            if tokens[-1] == END:
                if rank < K and not (old_rule and len(finished) == K):
                    finished.append((score / (t + 1) ** length_penalty, tokens))
            elif len(beams) < K:
                beams.append((tokens, score, state))
        if t == max_len - 1:  # the live beams, cut at max_len, finish too (old rule: only into free slots)
            cut = beams[: K - len(finished)] if old_rule else beams
            finished += [(score / max_len**length_penalty, tokens) for tokens, score, _ in cut]
        if old_rule and len(finished) == K:
            break
    return sorted(finished, key=lambda f: -f[0])[:K]


def is_valid(caption, min_len=1, no_repeat_ngram=0, banned_endings=()):
    """Whether a caption (list of ids) satisfies the constraints of ``beam_search``."""
    if caption[-1] == END and (len(caption) < min_len or (len(caption) > 1 and caption[-2] in banned_endings)):
        return False
    grams = [tuple(caption[i : i + no_repeat_ngram]) for i in range(len(caption) - no_repeat_ngram + 1)]
    return no_repeat_ngram == 0 or len(grams) == len(set(grams))


def brute_force(decoder, feature, max_len, length_penalty, words=WORDS, **constraints):
    """Every valid caption over ``words`` (words then <end>, or ``max_len`` words), best first: [(score, tokens)]."""
    captions = [list(w) + [END] for n in range(max_len) for w in itertools.product(words, repeat=n)]
    captions += [list(w) for w in itertools.product(words, repeat=max_len)]  # cut at max_len
    captions = [c for c in captions if is_valid(c, **constraints)]
    tokens = torch.tensor([c + [PAD] * (max_len - len(c)) for c in captions])  # [S, max_len]
    log_probs = sequence_log_prob(decoder, feature.expand(len(captions), *feature.shape[1:]), tokens)  # [S]
    scores = [lp / len(c) ** length_penalty for lp, c in zip(log_probs.tolist(), captions)]
    return sorted(zip(scores, captions), key=lambda sc: -sc[0])


def all_outputs(decoder, features, max_len=8, **options):
    """The captions of greedy decoding and all n-best captions of a width-4 beam search, as lists of ids."""
    greedy = greedy_decode(decoder, features, max_len, **IDS, **options)
    beam, _ = beam_search(decoder, features, 4, max_len, num_return=4, **IDS, **options)  # [B, 4, L]
    return [trim(row) for row in greedy.tolist() + beam.flatten(0, 1).tolist()]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_is_argmax_and_width_one_search(kind, seed):
    decoder = random_decoder(kind, seed)
    features = random_features(kind, 8, seed)
    greedy = greedy_decode(decoder, features, max_len=10, **IDS)
    assert torch.equal(greedy, argmax_decode(decoder, features, max_len=10))
    beam, _ = beam_search(decoder, features, beam_width=1, max_len=10, length_penalty=0.0, **IDS)
    assert torch.equal(greedy, beam)
    # With length normalisation one beam may go on past a first-ranked <end>: never worse than greedy, not equal.
    beam, scores = beam_search(decoder, features, beam_width=1, max_len=10, length_penalty=1.0, **IDS)
    greedy_scores = sequence_log_prob(decoder, features, greedy) / (greedy != PAD).sum(dim=1)
    assert (scores >= greedy_scores - 1e-5).all()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("beam_width", [3, 5])
@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_batched_equals_one_by_one(kind, beam_width, length_penalty):
    decoder = random_decoder(kind, seed=4, end_bias=0.5)  # chosen so that captions end at varied steps
    features = random_features(kind, 12)
    kwargs = {"beam_width": beam_width, "max_len": 10, "length_penalty": length_penalty, **IDS}
    tokens, scores = beam_search(decoder, features, **kwargs)
    ref_tokens, ref_scores = beam_search_one_by_one(decoder, features, **kwargs)
    assert torch.equal(tokens, ref_tokens)
    torch.testing.assert_close(scores, ref_scores)
    lengths = (tokens != PAD).sum(dim=1)
    assert len(set(lengths.tolist())) >= 3, "varied lengths exercise early finishing and dropping images"


@pytest.mark.parametrize("kind", KINDS)
def test_batched_equals_one_by_one_with_all_options(kind):
    decoder = random_decoder(kind, seed=4, end_bias=1.5, biases={UNK: 2.0, 4: 1.0})
    features = random_features(kind, 8)
    kwargs = {"beam_width": 4, "max_len": 9, "length_penalty": 0.8, "num_return": 3, **IDS, **ALL_OPTIONS}
    tokens, scores = beam_search(decoder, features, **kwargs)
    ref_tokens, ref_scores = beam_search_one_by_one(decoder, features, **kwargs)
    assert tokens.shape[:2] == (8, 3) and torch.equal(tokens, ref_tokens)
    torch.testing.assert_close(scores, ref_scores)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("length_penalty", [0.0, 0.7, 1.0])
def test_early_stopping_equals_running_to_max_len(kind, length_penalty):
    """The reference never stops early: an exact stopping rule returns the same n-best."""
    decoder = random_decoder(kind, seed=4)
    features = random_features(kind, 4, seed=4)
    tokens, scores = beam_search(decoder, features, 3, 8, length_penalty, num_return=3, **IDS)  # [B, 3, L]
    for i in range(features.size(0)):
        ref = reference_beam_search(decoder, features[i : i + 1], 3, 8, length_penalty)
        assert [trim(row) for row in tokens[i].tolist()] == [caption for _, caption in ref]
        assert scores[i].tolist() == pytest.approx([score for score, _ in ref], abs=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_never_worse_than_old_stopping_rule(kind):
    """Same live beams, more finished candidates: the new best is never below the old one, and sometimes above."""
    decoder = random_decoder(kind, seed=3, end_bias=0.5)
    features = random_features(kind, 12, seed=3)
    better = 0
    for length_penalty in [0.0, 0.5, 1.0]:
        _, scores = beam_search(decoder, features, 2, 8, length_penalty, **IDS)
        for i in range(features.size(0)):
            old_score, _ = reference_beam_search(decoder, features[i : i + 1], 2, 8, length_penalty, old_rule=True)[0]
            assert scores[i].item() >= old_score - 1e-5
            better += scores[i].item() > old_score + 1e-5
    assert better > 0, "the old rule (stop at K finished captions) returns a worse caption on some image"


@pytest.mark.parametrize(
    "length_penalty, rows, old, best",
    [  # rows: probabilities of (<end>, A=4, B=5) after <start>, A and B
        (1.0, {START: (0.5, 0.3, 0.2), 4: (0.9, 0.05, 0.05), 5: (0.025, 0.95, 0.025)}, [4, END], [5, 4, END]),
        (0.0, {START: (0.3, 0.67, 0.03), 4: (0.3, 0.03, 0.67), 5: (0.7, 0.15, 0.15)}, [END], [4, 5, END]),
    ],
)
def test_old_rule_misses_a_better_caption(length_penalty, rows, old, best):
    """Hand-made bigram models where the old rule stops at 2 finished captions too early, even without normalising."""
    probs = torch.zeros(6, 6)
    probs[:, [END, 4, 5]] = 1 / 3  # rows never used
    for prev, row in rows.items():
        probs[prev, [END, 4, 5]] = torch.tensor(row)
    decoder, tables = BigramDecoder(), probs.log().unsqueeze(0)  # [1, V, V]
    tokens, scores = beam_search(decoder, tables, beam_width=2, max_len=4, length_penalty=length_penalty, **IDS)
    old_score, old_caption = reference_beam_search(decoder, tables, 2, 4, length_penalty, old_rule=True)[0]
    best_score, best_caption = brute_force(decoder, tables, 4, length_penalty, words=[4, 5])[0]
    assert old_caption == old and best_caption == best and best_score > old_score
    assert trim(tokens[0].tolist()) == best
    assert scores[0].item() == pytest.approx(best_score, abs=1e-6)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("length_penalty", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("constraints", [{}, {"min_len": 2, "no_repeat_ngram": 2, "banned_endings": (4,)}])
def test_exhaustive_beam_equals_brute_force(kind, length_penalty, constraints):
    """40 beams hold every prefix of 3 words: the n-best must be the 3 best valid captions of all 40."""
    for seed in range(3):
        decoder = random_decoder(kind, seed, vocab=SMALL_V)
        features = random_features(kind, 6, seed)
        kwargs = {"num_return": 3, "unk_idx": UNK, **IDS, **constraints}
        tokens, scores = beam_search(decoder, features, 40, 3, length_penalty, **kwargs)  # [B, 3, L]
        for i in range(features.size(0)):
            best = brute_force(decoder, features[i : i + 1], 3, length_penalty, **constraints)[:3]
            assert [trim(row) for row in tokens[i].tolist()] == [caption for _, caption in best]
            assert scores[i].tolist() == pytest.approx([score for score, _ in best], abs=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_unk_is_never_generated(kind):
    decoder = random_decoder(kind, seed=0, biases={UNK: 3.0})
    features = random_features(kind, 8)
    assert any(UNK in row for row in all_outputs(decoder, features)), "the bias makes <unk> likely"
    assert not any(UNK in row for row in all_outputs(decoder, features, unk_idx=UNK))


@pytest.mark.parametrize("kind", KINDS)
def test_min_len(kind):
    decoder = random_decoder(kind, seed=0, end_bias=3.0)
    features = random_features(kind, 8)
    short = [row for row in all_outputs(decoder, features) if row[-1] == END and len(row) < 4]
    assert short, "the <end> bias makes short captions likely"
    outputs = all_outputs(decoder, features, min_len=4)
    assert all(len(row) >= 4 for row in outputs) and any(row[-1] == END for row in outputs)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", [1, 2, 3])
def test_no_repeat_ngram(kind, n):
    decoder = random_decoder(kind, seed=0, end_bias=-1.0, biases={4: 3.0})  # repeats word 4
    features = random_features(kind, 8)
    assert not all(is_valid(row, no_repeat_ngram=n) for row in all_outputs(decoder, features))
    assert all(is_valid(row, no_repeat_ngram=n) for row in all_outputs(decoder, features, no_repeat_ngram=n))


@pytest.mark.parametrize("kind", KINDS)
def test_banned_endings(kind):
    banned = (4, 5, 6, 7)
    decoder = random_decoder(kind, seed=0)
    features = random_features(kind, 8)
    outputs = all_outputs(decoder, features)
    assert any(len(row) > 1 and row[-1] == END and row[-2] in banned for row in outputs)
    outputs = all_outputs(decoder, features, banned_endings=banned)
    assert not any(len(row) > 1 and row[-1] == END and row[-2] in banned for row in outputs)
    assert sum(row[-1] == END for row in outputs) >= 8, "captions still end, on other words"


@pytest.mark.parametrize("kind", KINDS)
def test_num_return(kind):
    decoder = random_decoder(kind, seed=5)
    features = random_features(kind, 6, seed=5)
    tokens, scores = beam_search(decoder, features, 4, 10, **IDS, num_return=3)
    best, best_score = beam_search(decoder, features, 4, 10, **IDS)
    assert tokens.shape[:2] == (6, 3) and scores.shape == (6, 3) and best.dim() == 2 and best_score.dim() == 1
    assert (scores[:, :-1] >= scores[:, 1:]).all(), "best first"
    assert torch.equal(tokens[:, 0, : best.size(1)], best) and (tokens[:, 0, best.size(1) :] == PAD).all()
    assert torch.equal(scores[:, 0], best_score)
    assert all(len({tuple(row) for row in image}) == 3 for image in tokens.tolist()), "distinct captions"
    for num_return in [0, 5]:
        with pytest.raises(ValueError):
            beam_search(decoder, features, 4, 10, **IDS, num_return=num_return)


def test_num_return_pads_missing_captions():
    """Only 4 captions exist (<end> or one of 3 words): the 5th row is <pad> with score -inf."""
    decoder = random_decoder("lstm", seed=0, vocab=SMALL_V)
    tokens, scores = beam_search(decoder, random_features("lstm", 3), 5, 1, unk_idx=UNK, num_return=5, **IDS)
    assert tokens.shape == (3, 5, 1) and (tokens[:, 4] == PAD).all() and scores[:, 4].isneginf().all()
    assert torch.isfinite(scores[:, :4]).all()
    assert all(sorted(row) == [END, *WORDS] for row in tokens[:, :4, 0].tolist())


@pytest.mark.parametrize("kind", KINDS)
def test_scores_are_normalised_log_probs(kind):
    decoder = random_decoder(kind, seed=5)
    features = random_features(kind, 6, seed=5)
    tokens, scores = beam_search(decoder, features, beam_width=4, max_len=10, length_penalty=1.0, num_return=4, **IDS)
    tokens, scores = tokens.flatten(0, 1), scores.flatten()  # every n-best caption [B*4, L], [B*4]
    lengths = (tokens != PAD).sum(dim=1)
    torch.testing.assert_close(scores, sequence_log_prob(decoder, features.repeat_interleave(4, 0), tokens) / lengths)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("max_len", [1, 4, 7])
def test_max_len_and_padding(kind, max_len):
    decoder = random_decoder(kind, seed=6, end_bias=0.5)
    features = random_features(kind, 6, seed=6)
    outputs = [greedy_decode(decoder, features, max_len, **IDS), beam_search(decoder, features, 3, max_len, **IDS)[0]]
    for tokens in outputs:
        assert tokens.dtype == torch.long
        assert tokens.size(0) == 6 and 1 <= tokens.size(1) <= max_len
        for row in tokens.tolist():
            if END in row:
                end = row.index(END)
                assert all(tok == PAD for tok in row[end + 1 :])
            else:
                assert len(row) == max_len and PAD not in row


def test_never_ending_decoder_stops_at_max_len():
    decoder = random_decoder("lstm", seed=7, end_bias=-100.0)
    features = random_features("lstm", 3)
    tokens, scores = beam_search(decoder, features, beam_width=3, max_len=6, **IDS)
    assert tokens.shape == (3, 6) and not (tokens == END).any()
    assert torch.isfinite(scores).all()
    assert greedy_decode(decoder, features, max_len=6, **IDS).shape == (3, 6)
