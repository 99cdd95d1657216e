"""Show, Attend and Tell caption decoder with soft attention (Xu et al., 2015).

It follows the contract of ``vlc.models.caption_alignment``; its penalty is the doubly stochastic attention
penalty, weighted by ``penalty`` in the training loss.
"""

import torch
from torch import Tensor, nn

# (h [B*R, H], c [B*R, H], a [B, N, F], projected a [B, N, A]): the annotations are stored once per image and
# each image owns R consecutive rows of h and c (R = 1 in training, K hypotheses in beam search).
AttentionState = tuple[Tensor, Tensor, Tensor, Tensor]


class SoftAttention(nn.Module):
    """Additive (Bahdanau) attention ``e_ti = w^T tanh(W_a a_i + U_a h_{t-1})``, ``alpha_t = softmax(e_t)``.

    Args:
        feature_dim: Size ``F`` of each annotation vector ``a_i``.
        hidden_dim: Size ``H`` of the decoder state ``h``.
        attention_dim: Size ``A`` of the attention MLP.
    """

    def __init__(self, feature_dim: int, hidden_dim: int, attention_dim: int) -> None:
        super().__init__()
        self.W_a = nn.Linear(feature_dim, attention_dim)
        self.U_a = nn.Linear(hidden_dim, attention_dim)
        self.w = nn.Linear(attention_dim, 1)

    def project(self, a: Tensor) -> Tensor:
        """Precompute ``W_a a_i`` once per image: [B, N, F] -> [B, N, A]."""
        return self.W_a(a)

    def forward(self, a: Tensor, a_proj: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """Attend over the annotation vectors of each image with ``R`` decoder states per image.

        Args:
            a: Annotation vectors [B, N, F].
            a_proj: ``project(a)`` [B, N, A].
            h: Previous hidden states [B, R, H].

        Returns:
            ``(context, alpha)``: the expected annotations ``sum_i alpha_i a_i`` [B, R, F] and weights
            [B, R, N].
        """
        e_in = a_proj.unsqueeze(1) + self.U_a(h).unsqueeze(2)  # [B, 1, N, A] + [B, R, 1, A] -> [B, R, N, A]
        e = self.w(torch.tanh(e_in)).squeeze(3)  # [B, R, N]
        alpha = e.softmax(dim=2)  # [B, R, N]
        context = torch.bmm(alpha, a)  # [B, R, N] @ [B, N, F] -> [B, R, F]
        return context, alpha


class AttentionLSTMDecoder(nn.Module):
    """Show, Attend and Tell decoder: an ``LSTMCell`` that attends over a spatial feature grid.

    Per step (paper notation): ``alpha_t = f_att(a, h_{t-1})``, gate ``beta_t = sigmoid(f_beta(h_{t-1}))``,
    context ``z_t = beta_t * sum_i alpha_ti a_i``, ``h_t, c_t = LSTM([E y_{t-1}; z_t], (h_{t-1}, c_{t-1}))``
    and the deep output ``logits_t = L_o(E y_{t-1} + L_h h_t + L_z z_t)``. The initial ``h_0, c_0`` are
    linear functions of the mean annotation vector.

    Args:
        vocab_size: Number of tokens ``V``.
        feature_dim: Size ``F`` of each annotation vector.
        pad_idx: Index of ``<pad>`` in the vocabulary; its embedding is zero and receives no gradient.
        embed_dim: Word-embedding size ``E``.
        hidden_dim: LSTM hidden size ``H``.
        attention_dim: Size ``A`` of the attention MLP.
        dropout: Dropout applied before the output layer.
        penalty: Weight of the doubly stochastic attention penalty in the training loss.
    """

    spatial = True

    def __init__(
        self,
        vocab_size: int,
        feature_dim: int,
        pad_idx: int,
        embed_dim: int = 256,
        hidden_dim: int = 512,
        attention_dim: int = 256,
        dropout: float = 0.0,
        penalty: float = 1.0,
    ) -> None:
        super().__init__()
        self.penalty_weight = penalty
        self.vocab_size = vocab_size
        self.pad_idx = pad_idx
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_idx)
        self.attention = SoftAttention(feature_dim, hidden_dim, attention_dim)
        self.init_h = nn.Linear(feature_dim, hidden_dim)
        self.init_c = nn.Linear(feature_dim, hidden_dim)
        self.f_beta = nn.Linear(hidden_dim, 1)
        self.lstm = nn.LSTMCell(embed_dim + feature_dim, hidden_dim)
        self.L_h = nn.Linear(hidden_dim, embed_dim)
        self.L_z = nn.Linear(feature_dim, embed_dim)
        self.L_o = nn.Linear(embed_dim, vocab_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, features: Tensor, captions: Tensor) -> Tensor:
        """Teacher-forced logits.

        Args:
            features: Annotation vectors [B, N, F] (N = H*W grid positions).
            captions: Input tokens [B, T], normally ``captions[:, :-1]`` of the full caption.

        Returns:
            Logits [B, T, V]; ``logits[:, t]`` predicts the token that follows ``captions[:, t]``.
        """
        return self.forward_with_alphas(features, captions)[0]

    def forward_with_alphas(self, features: Tensor, captions: Tensor) -> tuple[Tensor, Tensor]:
        """Teacher-forced logits and attention weights.

        Args:
            features: Annotation vectors [B, N, F].
            captions: Input tokens [B, T].

        Returns:
            ``(logits, alphas)``: logits [B, T, V] and attention weights [B, T, N].
        """
        state = self.init_state(features)
        logits, alphas = [], []
        for t in range(captions.size(1)):
            logit, state, alpha = self._step(captions[:, t], state)  # [B, V], [B, N]
            logits.append(logit)
            alphas.append(alpha)
        return torch.stack(logits, dim=1), torch.stack(alphas, dim=1)  # [B, T, V], [B, T, N]

    def teacher_forced(self, features: Tensor, inputs: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Logits ``(B, T, V)`` and the doubly stochastic penalty over the real steps ``mask`` ``(B, T)``."""
        logits, alphas = self.forward_with_alphas(features, inputs)  # (B, T, V), (B, T, N)
        return logits, self.doubly_stochastic_loss(alphas.float(), mask)

    @staticmethod
    def doubly_stochastic_loss(alphas: Tensor, mask: Tensor | None = None) -> Tensor:
        """Doubly stochastic attention penalty ``(1 - sum_t alpha_ti)^2`` (Xu et al., 2015).

        Averaged over positions and images (as in common implementations) so that a weight of about 1 is
        a sensible default; the paper's sum over positions is ``N`` times larger.

        Args:
            alphas: Attention weights [B, T, N] from :meth:`forward_with_alphas`.
            mask: Optional [B, T] boolean mask of real (non-padding) steps, e.g. ``targets != pad_idx``.

        Returns:
            Scalar penalty.
        """
        if mask is not None:
            alphas = alphas * mask.unsqueeze(2).to(alphas.dtype)  # [B, T, N]
        return ((1.0 - alphas.sum(dim=1)) ** 2).mean()  # [B, N] -> []

    def init_state(self, features: Tensor) -> AttentionState:
        """Initial LSTM state from the mean annotation vector, plus the cached annotations.

        Args:
            features: Annotation vectors [B, N, F].

        Returns:
            ``(h, c, a, a_proj)``: h, c [B, H]; a [B, N, F]; a_proj [B, N, A].
        """
        mean = features.mean(dim=1)  # [B, N, F] -> [B, F]
        return self.init_h(mean), self.init_c(mean), features, self.attention.project(features)

    def step(self, tokens: Tensor, state: AttentionState) -> tuple[Tensor, AttentionState]:
        """Advance one token.

        Args:
            tokens: Previous tokens [B] (``<start>`` at the first step).
            state: From :meth:`init_state` or a previous :meth:`step`.

        Returns:
            ``(logits, state)`` with logits [B, V] for the next token.
        """
        logits, state, _ = self._step(tokens, state)
        return logits, state

    def _step(self, tokens: Tensor, state: AttentionState) -> tuple[Tensor, AttentionState, Tensor]:
        h, c, a, a_proj = state
        y = self.embedding(tokens)  # [B*R] -> [B*R, E]
        context, alpha = self.attention(a, a_proj, h.view(a.size(0), -1, h.size(1)))  # [B, R, F], [B, R, N]
        context, alpha = context.flatten(0, 1), alpha.flatten(0, 1)  # [B*R, F], [B*R, N]
        z = torch.sigmoid(self.f_beta(h)) * context  # gate beta [B, 1] * [B, F] -> [B, F]
        h, c = self.lstm(torch.cat([y, z], dim=1), (h, c))  # [B, E+F] -> [B, H]
        logits = self.L_o(self.dropout(y + self.L_h(h) + self.L_z(z)))  # [B, E] -> [B, V]
        return logits, (h, c, a, a_proj), alpha

    @staticmethod
    def reorder_state(state: AttentionState, index: Tensor) -> AttentionState:
        """Select (or repeat) rows of a state, e.g. to expand to or reorder beams.

        When the new rows stay grouped by image (as in beam search: every image's ``K`` beams are
        consecutive), the annotations are kept once per image instead of being copied for every row.

        Args:
            state: ``(h, c, a, a_proj)``, see ``AttentionState``.
            index: Row indices [B'] into h and c.

        Returns:
            The state with B' rows.
        """
        h, c, a, a_proj = state
        image = index.div(h.size(0) // a.size(0), rounding_mode="floor")  # image of each new row [B']
        images = image.unique_consecutive()  # [B'']
        R = index.numel() // images.numel()
        if images.numel() * R != index.numel() or not torch.equal(image, images.repeat_interleave(R)):
            images = image  # rows not grouped by image: one copy of the annotations per row
        return h.index_select(0, index), c.index_select(0, index), a[images], a_proj[images]
