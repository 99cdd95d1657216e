import pytest
import torch
import torch.nn.functional as F

from vlc.models.attention_decoder import AttentionLSTMDecoder
from vlc.models.decoding import beam_search, beam_search_one_by_one, greedy_decode
from vlc.models.lstm_decoder import LSTMDecoder

V, FEAT, N = 12, 16, 5
PAD, START, END = 0, 1, 2
IDS = {"start_idx": START, "end_idx": END, "pad_idx": PAD}
KINDS = ["lstm", "attention"]


def random_decoder(kind: str, seed: int, end_bias: float = 1.0):
    """An untrained decoder with spread-out weights, so captions differ per image and end at various steps."""
    torch.manual_seed(seed)
    if kind == "lstm":
        decoder = LSTMDecoder(V, FEAT, PAD, embed_dim=8, hidden_dim=16)
        out = decoder.fc
    else:
        decoder = AttentionLSTMDecoder(V, FEAT, PAD, embed_dim=8, hidden_dim=16, attention_dim=8)
        out = decoder.L_o
    with torch.no_grad():
        for p in decoder.parameters():
            p.normal_(0.0, 0.5)
        out.bias[END] += end_bias
    return decoder.eval()


def random_features(kind: str, batch: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (batch, FEAT) if kind == "lstm" else (batch, N, FEAT)
    return torch.randn(shape, generator=g)


def sequence_log_prob(decoder, features, tokens) -> torch.Tensor:
    """Summed log-probability of ``tokens`` [B, L] (padding after <end> ignored) via teacher forcing."""
    inputs = torch.cat([torch.full_like(tokens[:, :1], START), tokens[:, :-1]], dim=1)  # [B, L]
    log_probs = F.log_softmax(decoder(features, inputs), dim=-1)  # [B, L, V]
    picked = log_probs.gather(2, tokens.unsqueeze(2)).squeeze(2)  # [B, L]
    return (picked * (tokens != PAD)).sum(dim=1)


def reference_beam_search(decoder, feature, beam_width, max_len, length_penalty):
    """Slow list-based beam search for one image [1, ...], written independently of ``beam_search``."""
    beams = [([], 0.0, decoder.init_state(feature))]
    finished = []
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
        candidates = sorted(candidates, key=lambda c: -c[0])[: 2 * beam_width]
        beams = []
        for rank, (score, tokens, state) in enumerate(candidates):
            if tokens[-1] == END:
                if rank < beam_width and len(finished) < beam_width:
                    finished.append((score / (t + 1) ** length_penalty, tokens))
            elif len(beams) < beam_width:
                beams.append((tokens, score, state))
        if len(finished) >= beam_width:
            break
        if t == max_len - 1:
            free = beam_width - len(finished)
            finished += [(score / max_len**length_penalty, tokens) for tokens, score, _ in beams[:free]]
    return max(finished, key=lambda f: f[0])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_equals_beam_width_one(kind, seed):
    decoder = random_decoder(kind, seed)
    features = random_features(kind, 8, seed)
    greedy = greedy_decode(decoder, features, max_len=10, **IDS)
    beam, _ = beam_search(decoder, features, beam_width=1, max_len=10, **IDS)
    assert torch.equal(greedy, beam)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("beam_width", [3, 5])
@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_batched_equals_one_by_one(kind, beam_width, length_penalty):
    decoder = random_decoder(kind, seed=4, end_bias=0.0)  # chosen so that captions end at varied steps
    features = random_features(kind, 6)
    kwargs = {"beam_width": beam_width, "max_len": 10, "length_penalty": length_penalty, **IDS}
    tokens, scores = beam_search(decoder, features, **kwargs)
    ref_tokens, ref_scores = beam_search_one_by_one(decoder, features, **kwargs)
    assert torch.equal(tokens, ref_tokens)
    torch.testing.assert_close(scores, ref_scores)
    lengths = (tokens != PAD).sum(dim=1)
    assert len(set(lengths.tolist())) >= 3, "varied lengths exercise early finishing and dropping images"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("length_penalty", [0.0, 0.7])
def test_beam_search_matches_reference(kind, length_penalty):
    decoder = random_decoder(kind, seed=4)
    features = random_features(kind, 4, seed=4)
    tokens, scores = beam_search(decoder, features, beam_width=3, max_len=8, length_penalty=length_penalty, **IDS)
    for i in range(features.size(0)):
        ref_score, ref_tokens = reference_beam_search(decoder, features[i : i + 1], 3, 8, length_penalty)
        assert tokens[i, : len(ref_tokens)].tolist() == ref_tokens
        assert (tokens[i, len(ref_tokens) :] == PAD).all()
        assert scores[i].item() == pytest.approx(ref_score, abs=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_scores_are_normalised_log_probs(kind):
    decoder = random_decoder(kind, seed=5)
    features = random_features(kind, 6, seed=5)
    tokens, scores = beam_search(decoder, features, beam_width=4, max_len=10, length_penalty=1.0, **IDS)
    lengths = (tokens != PAD).sum(dim=1)
    torch.testing.assert_close(scores, sequence_log_prob(decoder, features, tokens) / lengths)


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
