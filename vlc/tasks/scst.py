"""Self-critical sequence training (Rennie et al., 2017): the captioner's loss once ``scst_from_epoch`` is reached.

Per image ``n`` captions are sampled from the decoder (``vlc.models.decoding.sample_captions``) and rewarded with
their CIDEr-D against the image's references (``vlc.metrics.cider_reward``, document frequencies of the training
captions). The baseline is the reward of the greedy caption, decoded in eval mode without gradients (``greedy``), or
the mean reward of the image's other samples (``mean``, the "new self-critical" of ruotianluo's repository, n >= 2).
The loss ``-(reward - baseline) * sum_t log p(w_t)`` is averaged over the sampled words (``<end>`` included, nothing
after it), so a caption that beats the baseline is made more likely and one that falls short less likely.
"""

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from vlc.metrics.cider_reward import CiderReward
from vlc.models.decoding import greedy_decode, sample_captions
from vlc.vocabulary import Vocabulary

Baseline = Literal["greedy", "mean"]


@dataclass
class SelfCritical:
    """The loss of one training batch and what it is made of (all detached but ``loss``)."""

    loss: Tensor  # []
    reward: Tensor  # [] mean reward of the sampled captions
    baseline: Tensor  # [] mean baseline


def policy_gradient_loss(log_probs: Tensor, drawn: Tensor, advantage: Tensor) -> Tensor:
    """``-advantage * log p`` averaged over the drawn words.

    Args:
        log_probs: each token's log-probability ``(B, L)``.
        drawn: ``(B, L)`` true for the drawn words (``<end>`` included), false after ``<end>``.
        advantage: reward minus baseline per caption ``(B,)``.
    """
    weighted = advantage.unsqueeze(1) * log_probs.masked_fill(~drawn, 0.0)  # (B, L)
    return -weighted.sum() / drawn.sum().clamp(min=1)


def self_critical(
    decoder: nn.Module,
    features: Tensor,
    references: list[list[str]],
    reward: CiderReward,
    vocab: Vocabulary,
    max_len: int,
    samples: int = 1,
    baseline: Baseline = "greedy",
) -> SelfCritical:
    """The self-critical loss of a batch: ``features`` ``(B, ...)``, ``references`` B lists of strings."""
    B = features.size(0)
    rules = {"start_idx": vocab.START, "end_idx": vocab.END, "pad_idx": vocab.PAD, "unk_idx": vocab.UNK}
    rows = torch.arange(B, device=features.device).repeat_interleave(samples)  # [B*n]: each image's n samples
    tokens, log_probs = sample_captions(decoder, features[rows], max_len, **rules)  # [B*n, L] each
    repeated = [references[i] for i in rows.tolist()]
    rewards = reward([vocab.decode(t) for t in tokens.cpu()], repeated).to(features.device)  # [B*n]
    if baseline == "greedy":
        was_training = decoder.training
        decoder.eval()
        greedy = greedy_decode(decoder, features, max_len, **rules)  # [B, L']
        decoder.train(was_training)
        base = reward([vocab.decode(t) for t in greedy.cpu()], references).to(features.device)[rows]  # [B*n]
    else:  # the mean of the image's other samples
        per_image = rewards.view(B, samples)  # [B, n]
        base = ((per_image.sum(dim=1, keepdim=True) - per_image) / (samples - 1)).flatten()  # [B*n]
    loss = policy_gradient_loss(log_probs, tokens != vocab.PAD, rewards - base)
    return SelfCritical(loss, rewards.mean(), base.mean())
