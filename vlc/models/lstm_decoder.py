"""Show and Tell caption decoder (Vinyals et al., 2015); see ``vlc.models.caption_alignment`` for its contract."""

import functools

import torch
from torch import Tensor, nn

LSTMState = tuple[Tensor, Tensor]


@functools.cache
def cpu_bf16_lstm() -> bool:
    """Whether this CPU runs ``nn.LSTM`` under bfloat16 autocast (oneDNN refuses it without AVX-512 BF16)."""
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            nn.LSTM(4, 4, batch_first=True)(torch.zeros(1, 1, 4))
        return True
    except RuntimeError:
        return False


class LSTMDecoder(nn.Module):
    """Show and Tell decoder: the image is the first input of an LSTM language model.

    The pooled image feature is projected to the word-embedding space (``W_e CNN(I)`` in the paper) and fed
    at step ``-1``; its output is discarded. The caption tokens follow, and each LSTM output is mapped to
    next-token logits. See the module docstring for the input/target alignment.

    Args:
        vocab_size: Number of tokens ``V``.
        feature_dim: Size ``F`` of the pooled image feature.
        pad_idx: Index of ``<pad>`` in the vocabulary; its embedding is zero and receives no gradient.
        embed_dim: Word-embedding size ``E`` (e.g. 300 to load GloVe into ``self.embedding``).
        hidden_dim: LSTM hidden size ``H``.
        num_layers: Number of stacked LSTM layers.
        dropout: Dropout on the LSTM outputs (and between layers when ``num_layers > 1``).
    """

    spatial = False
    penalty_weight = 0.0

    def __init__(
        self,
        vocab_size: int,
        feature_dim: int,
        pad_idx: int,
        embed_dim: int = 256,
        hidden_dim: int = 512,
        num_layers: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.pad_idx = pad_idx
        self.image_proj = nn.Linear(feature_dim, embed_dim)
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_idx)
        self.lstm = nn.LSTM(
            embed_dim,
            hidden_dim,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden_dim, vocab_size)

    def forward(self, features: Tensor, captions: Tensor) -> Tensor:
        """Teacher-forced logits.

        Args:
            features: Pooled image features [B, F].
            captions: Input tokens [B, T], normally ``captions[:, :-1]`` of the full caption.

        Returns:
            Logits [B, T, V]; ``logits[:, t]`` predicts the token that follows ``captions[:, t]``.
        """
        image = self.image_proj(features).unsqueeze(1)  # [B, F] -> [B, 1, E]
        words = self.embedding(captions)  # [B, T] -> [B, T, E]
        x = torch.cat([image, words], dim=1)  # [B, T+1, E]
        out, _ = self.run_lstm(x)  # [B, T+1, H]
        out = self.dropout(out[:, 1:])  # drop the image step: [B, T, H]
        return self.fc(out)  # [B, T, V]

    def run_lstm(self, x: Tensor, state: LSTMState | None = None) -> tuple[Tensor, LSTMState]:
        """``self.lstm``, in float32 on a CPU whose oneDNN has no bfloat16 LSTM (under bf16-mixed it would fail)."""
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu") and not cpu_bf16_lstm():
            with torch.autocast("cpu", enabled=False):
                return self.lstm(x.float(), None if state is None else tuple(s.float() for s in state))
        return self.lstm(x, state)

    def teacher_forced(self, features: Tensor, inputs: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Logits ``(B, T, V)`` of :meth:`forward` and no penalty (0)."""
        logits = self(features, inputs)
        return logits, logits.new_zeros((), dtype=torch.float32)

    def init_state(self, features: Tensor) -> LSTMState:
        """Run the image step and return the LSTM state that precedes the ``<start>`` token.

        Args:
            features: Pooled image features [B, F].

        Returns:
            ``(h, c)``, each [num_layers, B, H] (batch on dim 1).
        """
        image = self.image_proj(features).unsqueeze(1)  # [B, F] -> [B, 1, E]
        _, (h, c) = self.run_lstm(image)  # h, c: [L, B, H]
        return h, c

    def step(self, tokens: Tensor, state: LSTMState) -> tuple[Tensor, LSTMState]:
        """Advance one token.

        Args:
            tokens: Previous tokens [B] (``<start>`` at the first step).
            state: ``(h, c)`` from :meth:`init_state` or a previous :meth:`step`.

        Returns:
            ``(logits, state)`` with logits [B, V] for the next token.
        """
        x = self.embedding(tokens).unsqueeze(1)  # [B] -> [B, 1, E]
        out, state = self.run_lstm(x, state)  # [B, 1, H]
        logits = self.fc(self.dropout(out.squeeze(1)))  # [B, H] -> [B, V]
        return logits, state

    @staticmethod
    def reorder_state(state: LSTMState, index: Tensor) -> LSTMState:
        """Select (or repeat) batch rows of a state, e.g. to expand to or reorder beams.

        Args:
            state: ``(h, c)``, each [L, B, H].
            index: Row indices [B'] into the batch.

        Returns:
            ``(h, c)``, each [L, B', H].
        """
        return tuple(s.index_select(1, index) for s in state)
