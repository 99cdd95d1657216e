"""Self-critical sequence training: the CIDEr-D reward, the sign of its policy gradient, and a fit through the CLI."""

import pytest
import torch
from helpers import events, run_fails, tiny_captioner
from pycocoevalcap.cider.cider import Cider
from test_caption_data import write_coco

from vlc.cli import main
from vlc.metrics.cider_reward import CiderReward
from vlc.models.attention_decoder import AttentionLSTMDecoder
from vlc.models.decoding import sample_captions
from vlc.tasks.scst import policy_gradient_loss
from vlc.vocabulary import Vocabulary, tokenize

REFERENCES = [
    ["A dog runs on the grass.", "A brown dog is running", "the dog runs"],
    ["A man rides a bike", "a person on a bicycle"],
    ["Two children play in the water.", "kids splash in a pool"],
]


def test_reward_is_pycocoevalcaps_cider_d_with_the_corpus_document_frequencies():
    captions = ["a dog runs on grass", "a man on a bike", "children play in the water water"]
    reward = CiderReward(REFERENCES)(captions, REFERENCES)
    gts = {i: [" ".join(tokenize(ref)) for ref in refs] for i, refs in enumerate(REFERENCES)}
    _, expected = Cider().compute_score(gts, {i: [c] for i, c in enumerate(captions)})
    assert reward.shape == (3,) and torch.allclose(reward, torch.tensor(expected, dtype=torch.float32), atol=1e-5)
    assert reward.min() > 0.5  # a real test: each caption shares n-grams with its references
    # the document frequencies stay those of the corpus given first, whatever is scored later
    alone = CiderReward(REFERENCES)(captions[:1], REFERENCES[:1])
    assert torch.allclose(alone, reward[:1])
    assert CiderReward(REFERENCES)(["purple elephants"], REFERENCES[:1]).item() == 0.0


def _caption_log_prob(decoder, features, tokens) -> torch.Tensor:
    """The summed log-probability ``(B,)`` of captions ``tokens`` ``(B, L)`` (``<end>`` included), teacher-forced."""
    inputs = torch.cat([torch.full_like(tokens[:, :1], Vocabulary.START), tokens[:, :-1]], dim=1)
    log_p = decoder(features, inputs).log_softmax(-1).gather(2, tokens.unsqueeze(2)).squeeze(2)  # (B, L)
    return log_p.masked_fill(tokens == Vocabulary.PAD, 0.0).sum(dim=1)


def test_policy_gradient_makes_a_caption_above_its_baseline_more_likely_and_one_below_less():
    rules = {"start_idx": Vocabulary.START, "end_idx": Vocabulary.END, "pad_idx": Vocabulary.PAD}
    for advantage, sign in ((1.0, 1), (-1.0, -1)):
        torch.manual_seed(0)
        decoder = AttentionLSTMDecoder(12, 6, Vocabulary.PAD, embed_dim=8, hidden_dim=16, attention_dim=8)
        features = torch.randn(3, 4, 6)  # (B, N, F)
        tokens, log_probs = sample_captions(decoder, features, 6, **rules)  # (B, L) each
        before = _caption_log_prob(decoder, features, tokens).detach()
        assert torch.allclose(log_probs.sum(dim=1), before, atol=1e-5)  # the log-probabilities of what was drawn
        loss = policy_gradient_loss(log_probs, tokens != Vocabulary.PAD, torch.full((3,), advantage))
        loss.backward()
        torch.optim.SGD(decoder.parameters(), lr=0.1).step()
        after = _caption_log_prob(decoder, features, tokens).detach()
        assert (torch.sign(after - before) == sign).all(), (advantage, before, after)


def _fit(root, monkeypatch, *extra) -> dict:
    """A tiny captioner fitted in ``root`` with SCST from its first epoch; its ``last.ckpt``."""
    root.mkdir(exist_ok=True)
    monkeypatch.chdir(root)
    images_dir, captions_file = write_coco(root / "coco", n=16)
    args = [
        "fit",
        *tiny_captioner(images_dir, captions_file),
        "--model.scst_from_epoch=0",
        "--model.scst_lr_scale=0.5",
        "--model.monitor=val/cider_d",
        "--model.decoding.max_len=6",
        "--data.batch_size=4",
        "--data.num_workers=0",
        "--data.every_caption=true",
        "--trainer.log_every_n_steps=1",
        "--trainer.limit_train_batches=4",
        "--model.feature_cache=off",  # cached features differ in the last bit with the batch that computed them
        *extra,
    ]
    main(args)
    return torch.load(root / "checkpoints" / "coco-resnet50-lstm" / "version_0" / "last.ckpt", weights_only=False)


@pytest.mark.slow  # three tiny fits
def test_self_critical_fit_logs_rewards_chooses_on_cider_d_and_resumes_exactly(tmp_path, monkeypatch):
    straight = _fit(tmp_path / "a", monkeypatch, "--trainer.max_epochs=2")
    run = tmp_path / "a" / "logs" / "coco-resnet50-lstm" / "version_0"
    scalars = set(events(run).Tags()["scalars"])
    assert {"train/reward_epoch", "train/reward_baseline_epoch", "val/cider_d"} <= scalars
    rewards = [e.value for e in events(run).Scalars("train/reward_step")]
    assert rewards and all(r >= 0 for r in rewards)
    folder = tmp_path / "a" / "checkpoints" / "coco-resnet50-lstm" / "version_0"
    assert list(folder.glob("best-epoch*-ciderd*.ckpt"))  # chosen on CIDEr-D, and named so
    lrs = [g["lr"] for g in straight["optimizer_states"][0]["param_groups"]]
    assert lrs and all(lr == 1e-3 * 0.5 for lr in lrs)  # scaled once: the recipe's Adam at 1e-3, halved

    _fit(tmp_path / "b", monkeypatch, "--trainer.max_epochs=1")
    resumed = _fit(tmp_path / "b", monkeypatch, "--trainer.max_epochs=2", "--ckpt_path=last")
    assert resumed["global_step"] == straight["global_step"] > 0
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key  # the same samples, the same steps
    assert [g["lr"] for g in resumed["optimizer_states"][0]["param_groups"]] == lrs  # not scaled twice


def test_mean_baseline_needs_two_samples(tmp_path, capsys):
    images_dir, captions_file = write_coco(tmp_path / "coco", n=16)
    args = ["fit", *tiny_captioner(images_dir, captions_file), "--model.scst_baseline=mean", "--trainer.max_epochs=1"]
    err = run_fails(capsys, args, code=2)
    assert "vlc: error: model.scst_baseline: mean needs model.scst_samples of at least 2" in err
