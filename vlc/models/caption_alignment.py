"""The alignment rule every caption decoder follows, and the teacher-forced loss built on it.

A caption tensor holds ``<start> w_1 ... w_n <end> <pad> ...``. A decoder is fed the *inputs* ``captions[:, :-1]``
and trained to predict the *targets* ``captions[:, 1:]``; it returns one logit vector per input token, so
``logits[:, t]`` predicts ``targets[:, t] == captions[:, t + 1]``. The step API follows the same rule:
``state = decoder.init_state(features)`` then ``logits_t, state = decoder.step(inputs[:, t], state)`` reproduces
``decoder(features, inputs)[:, t]`` (in eval mode, i.e. without dropout).

Every decoder (``vlc.models.LSTMDecoder``, ``vlc.models.AttentionLSTMDecoder``) is built as
``Decoder(vocab_size, feature_dim, pad_idx, **its_args)`` and offers:

* ``spatial``: whether it takes annotation vectors ``(B, N, F)`` (a flattened grid) or one pooled vector ``(B, F)``;
* ``teacher_forced(features, inputs, mask) -> (logits, penalty)``: logits ``(B, T, V)`` and its extra penalty
  (a scalar, 0 for a decoder without one), of which ``penalty_weight`` is added to the loss;
* ``init_state``, ``step``, ``reorder_state`` for greedy decoding and beam search (``vlc.models.decoding``).
"""

import torch.nn.functional as F
from torch import Tensor, nn


def shift_captions(captions: Tensor) -> tuple[Tensor, Tensor]:
    """Split captions ``(B, T)`` into teacher-forcing inputs and next-token targets, ``(B, T-1)`` each."""
    return captions[:, :-1], captions[:, 1:]


def caption_loss(decoder: nn.Module, features: Tensor, captions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Cross-entropy of the next token ignoring padding, the decoder's penalty, and the logits ``(B, T-1, V)``."""
    inputs, targets = shift_captions(captions)  # (B, T-1) each
    logits, penalty = decoder.teacher_forced(features, inputs, targets != decoder.pad_idx)
    ce = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=decoder.pad_idx)
    return ce, penalty, logits
