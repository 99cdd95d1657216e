import pytest
import torch
import torch.nn.functional as F

from vlc.models.attention_decoder import AttentionLSTMDecoder
from vlc.models.caption_alignment import caption_loss, shift_captions
from vlc.models.decoding import beam_search, greedy_decode
from vlc.models.lstm_decoder import LSTMDecoder

V, FEAT, N = 20, 16, 6
PAD, START, END = 0, 1, 2
IDS = {"start_idx": START, "end_idx": END, "pad_idx": PAD}


def make_decoder(kind: str, **kwargs):
    kwargs = {"embed_dim": 16, "hidden_dim": 32, **kwargs}
    if kind == "lstm":
        return LSTMDecoder(V, FEAT, PAD, **kwargs)
    return AttentionLSTMDecoder(V, FEAT, PAD, attention_dim=16, **kwargs)


def make_features(kind: str, batch: int) -> torch.Tensor:
    return torch.randn(batch, FEAT) if kind == "lstm" else torch.randn(batch, N, FEAT)


def make_captions() -> torch.Tensor:
    """Four distinct captions of different lengths: <start> words <end> <pad>..."""
    words = [[4, 5, 6, 7, 8, 9], [10, 11, 12, 13], [5, 14, 15, 16, 17, 18], [19, 4, 10]]
    T = max(len(w) for w in words) + 2
    rows = [[START, *w, END] + [PAD] * (T - len(w) - 2) for w in words]
    return torch.tensor(rows)  # [4, T]


KINDS = ["lstm", "attention"]


@pytest.mark.parametrize("kind", KINDS)
def test_forward_shape(kind):
    torch.manual_seed(0)
    decoder = make_decoder(kind)
    inputs, targets = shift_captions(make_captions())
    logits = decoder(make_features(kind, 4), inputs)
    assert inputs.shape == targets.shape == (4, 7)
    assert logits.shape == (4, 7, V)


def test_one_interface_spatial_flags_penalties_and_embedding():
    captions = make_captions()
    for kind, spatial in (("lstm", False), ("attention", True)):
        decoder = make_decoder(kind, embed_dim=300)
        assert decoder.spatial is spatial and decoder.pad_idx == PAD
        assert decoder.embedding.weight.shape == (V, 300) and not decoder.embedding.weight[PAD].any()
        ce, penalty, logits = caption_loss(decoder, make_features(kind, 4), captions)
        assert logits.shape == (4, 7, V) and ce.item() > 0
        assert (penalty.item() > 0) == spatial and decoder.penalty_weight == (1.0 if spatial else 0.0)


@pytest.mark.parametrize(("kind", "kwargs"), [("lstm", {}), ("lstm", {"num_layers": 2}), ("attention", {})])
def test_forward_matches_step(kind, kwargs):
    torch.manual_seed(0)
    decoder = make_decoder(kind, dropout=0.3, **kwargs).eval()
    features = make_features(kind, 4)
    inputs, _ = shift_captions(make_captions())
    logits = decoder(features, inputs)
    state = decoder.init_state(features)
    for t in range(inputs.size(1)):
        step_logits, state = decoder.step(inputs[:, t], state)
        torch.testing.assert_close(step_logits, logits[:, t])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("index", [[2, 0, 0, 1], [0, 0, 1, 1, 2, 2], [2, 2, 1, 1]])
def test_reorder_state(kind, index):
    torch.manual_seed(0)
    decoder = make_decoder(kind).eval()
    features = make_features(kind, 3)
    tokens, index = torch.tensor([START, 4, 5]), torch.tensor(index)
    logits, state = decoder.step(tokens, decoder.init_state(features))
    next_logits, _ = decoder.step(tokens, state)
    reordered_state = decoder.reorder_state(state, index)
    reordered, _ = decoder.step(tokens[index], reordered_state)
    torch.testing.assert_close(reordered, next_logits[index])


def test_attention_reorder_keeps_annotations_per_image():
    """Beam-style reorders (rows grouped by image) must not copy the annotations for every row."""
    torch.manual_seed(0)
    decoder = make_decoder("attention").eval()
    features = make_features("attention", 3)
    state = decoder.reorder_state(decoder.init_state(features), torch.arange(3).repeat_interleave(2))
    assert state[0].shape == (6, 32) and state[2].shape == (3, N, FEAT)
    logits, state = decoder.step(torch.tensor([START] * 6), state)
    index = torch.tensor([5, 5, 1, 0])  # beams of images 2 and 0, image 1 dropped
    grouped = decoder.reorder_state(state, index)
    assert grouped[2].shape == (2, N, FEAT)
    h, c, a, a_proj = state  # reference: one copy of the annotations per row
    image = torch.tensor([2, 2, 0, 0])
    copied = (h[index], c[index], a[image], a_proj[image])
    tokens = torch.tensor([4, 5, 6, 7])
    torch.testing.assert_close(decoder.step(tokens, grouped)[0], decoder.step(tokens, copied)[0])


def test_doubly_stochastic_loss():
    torch.manual_seed(0)
    decoder = make_decoder("attention")
    inputs, targets = shift_captions(make_captions())
    logits, alphas = decoder.forward_with_alphas(make_features("attention", 4), inputs)
    assert alphas.shape == (4, 7, N)
    torch.testing.assert_close(alphas.sum(dim=2), torch.ones(4, 7))
    penalty = decoder.doubly_stochastic_loss(alphas, mask=targets != PAD)
    assert penalty.ndim == 0 and penalty > 0
    penalty.backward()
    assert decoder.attention.U_a.weight.grad is not None
    # Attention that sums to one over time at every position costs nothing.
    uniform = torch.full((2, N, N), 1.0 / N)
    assert decoder.doubly_stochastic_loss(uniform).item() == pytest.approx(0.0)


@pytest.fixture(scope="module", params=KINDS)
def overfit(request):
    """Train a small decoder on 4 (feature, caption) pairs until it memorises them."""
    kind = request.param
    torch.manual_seed(0)
    decoder = make_decoder(kind)
    features, captions = make_features(kind, 4), make_captions()
    inputs, targets = shift_captions(captions)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=1e-2)
    for _ in range(300):
        logits = decoder(features, inputs)
        loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=PAD)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if loss.item() < 0.01:
            break
    return decoder.eval(), features, targets, loss.item()


def test_overfit_reaches_near_zero_loss(overfit):
    _, _, _, loss = overfit
    assert loss < 0.05


def test_greedy_reproduces_training_captions(overfit):
    decoder, features, targets, _ = overfit
    tokens = greedy_decode(decoder, features, max_len=12, **IDS)
    torch.testing.assert_close(tokens, targets, rtol=0, atol=0)


@pytest.mark.parametrize("beam_width", [1, 3])
def test_beam_reproduces_training_captions(overfit, beam_width):
    decoder, features, targets, _ = overfit
    tokens, scores = beam_search(decoder, features, beam_width=beam_width, max_len=12, **IDS)
    torch.testing.assert_close(tokens, targets, rtol=0, atol=0)
    assert (scores > -0.05).all()


@pytest.mark.parametrize("kind", KINDS)
def test_decoders_train_and_decode_under_cpu_bf16_autocast(kind):
    """bf16-mixed on any CPU: where oneDNN has no bfloat16 LSTM (no AVX-512 BF16), the LSTM runs in float32."""
    torch.manual_seed(0)
    decoder = make_decoder(kind, num_layers=2) if kind == "lstm" else make_decoder(kind)
    features = make_features(kind, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ce, _, logits = caption_loss(decoder, features, make_captions())
        ce.backward()
        tokens, scores = beam_search(decoder.eval(), features, beam_width=2, max_len=6, **IDS)
    assert torch.isfinite(ce) and logits.shape == (4, 7, V) and tokens.shape[0] == 4 and torch.isfinite(scores).all()
