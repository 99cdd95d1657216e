"""Base class of the caption metrics: accumulates captions as tensors of UTF-8 bytes, synced by torchmetrics."""

import itertools
from collections.abc import Sequence
from typing import Any, Literal, get_args

import torch
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

from vlc.metrics.ptb import ptb_tokenize, require_ptb
from vlc.vocabulary import tokenize

Tokenizer = Literal["vlc", "ptb"]
"""How captions are split into words before scoring: see :class:`CaptionMetric`."""


def to_bytes(texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """The UTF-8 bytes of ``texts`` end to end ``(sum of lengths,)`` uint8, and each one's length ``(N,)``."""
    data = [text.encode("utf-8") for text in texts]
    joined = b"".join(data)
    flat = torch.frombuffer(bytearray(joined), dtype=torch.uint8) if joined else torch.zeros(0, dtype=torch.uint8)
    return flat, torch.tensor([len(d) for d in data], dtype=torch.long)


def from_bytes(state: Any, lengths: Any) -> list[str]:
    """The strings that :func:`to_bytes` wrote into a (list) state and its lengths state."""
    flat, sizes = cat_state(state).to(torch.uint8).cpu(), cat_state(lengths).long().tolist()
    raw, texts, start = flat.numpy().tobytes(), [], 0
    for size in sizes:
        texts.append(raw[start : start + size].decode("utf-8"))
        start += size
    return texts


def cat_state(state: Any) -> torch.Tensor:
    """A list state (before sync) or a tensor (after sync) as one tensor; empty when nothing was added."""
    if isinstance(state, list) and not state:
        return torch.zeros(0)
    return dim_zero_cat(state)


class CaptionMetric(Metric):
    """Accumulate generated captions and their references; subclasses score the corpus in ``compute()``.

    ``update(preds, targets)`` takes the generated caption of each image and, per image, the list of its
    reference captions. They are kept as tensors of UTF-8 bytes with their lengths: list states reduced by
    concatenation, in the metric's floating-point dtype (which holds bytes and lengths exactly). So torchmetrics
    gathers them across processes, moves them with the module and groups metrics that share them in a
    ``MetricCollection`` like any tensor state; :attr:`preds` and :attr:`targets` read them back as strings.
    Prefer ``update()`` + ``compute()`` over ``forward()``: ``forward`` also computes a value on the batch alone,
    which is wasted work for corpus-level metrics.

    ``tokenizer`` says how ``compute()`` splits captions and references into words:

    - ``"vlc"``: :func:`vlc.vocabulary.tokenize` (lower case, ``wordpunct`` split, punctuation dropped), the
      words the vocabulary and the training targets are made of. Pure Python.
    - ``"ptb"``: :func:`vlc.metrics.ptb.ptb_tokenize`, the Stanford PTBTokenizer of the official COCO caption
      evaluation (pycocoevalcap), so that scores are comparable with published COCO results. It keeps
      ``"well-known"``, ``"5:30"`` and ``"&"`` as tokens and splits ``"man's"`` into ``"man"``, ``"'s"``, where
      ``"vlc"`` gives ``"well"``, ``"known"``, ``"5"``, ``"30"``, no token, and ``"man"``, ``"s"``. It needs Java:
      without it the constructor raises :class:`vlc.errors.UserError`. All captions of one ``compute()`` go
      through a single Java process (1-2 s for 1000 images with 5 references each).

    Args:
        tokenizer: ``"vlc"`` or ``"ptb"``, see above.
        kwargs: Passed to :class:`torchmetrics.Metric`.

    Raises:
        ValueError: If ``tokenizer`` is not one of those.
        UserError: If ``tokenizer="ptb"`` and Java or the tokenizer's jar is missing.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, tokenizer: Tokenizer = "vlc", **kwargs: Any) -> None:
        if tokenizer not in get_args(Tokenizer):
            raise ValueError(f"tokenizer must be one of {get_args(Tokenizer)}, got {tokenizer!r}")
        if tokenizer == "ptb":
            require_ptb()
        super().__init__(**kwargs)
        self.tokenizer = tokenizer
        for name in ("pred_bytes", "pred_lengths", "ref_bytes", "ref_lengths", "ref_counts"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    @property
    def preds(self) -> list[str]:
        """The generated captions so far, one per image."""
        return from_bytes(self.pred_bytes, self.pred_lengths)

    @property
    def targets(self) -> list[list[str]]:
        """The reference captions so far, a list per image."""
        refs, counts = from_bytes(self.ref_bytes, self.ref_lengths), cat_state(self.ref_counts).long().tolist()
        ends = list(itertools.accumulate(counts))
        return [refs[end - count : end] for end, count in zip(ends, counts)]

    def update(self, preds: Sequence[str], targets: Sequence[Sequence[str]]) -> None:
        """Add a batch of generated captions and their references.

        Args:
            preds: One generated caption per image.
            targets: Per image, a non-empty list of reference captions.

        Raises:
            ValueError: If the lengths differ, an image has no reference, or an item is not a string.
        """
        if isinstance(preds, str) or len(preds) != len(targets):
            raise ValueError("preds must be a list of captions, one per image, as long as targets")
        for pred, refs in zip(preds, targets, strict=True):
            if not isinstance(pred, str):
                raise ValueError(f"each prediction must be a string, got {type(pred).__name__}")
            if isinstance(refs, str) or not refs or not all(isinstance(ref, str) for ref in refs):
                raise ValueError(f"each target must be a non-empty list of strings, got {refs!r}")
        pred_bytes, pred_lengths = to_bytes(preds)
        ref_bytes, ref_lengths = to_bytes([ref for refs in targets for ref in refs])
        counts = torch.tensor([len(refs) for refs in targets])
        for state, values in (
            (self.pred_bytes, pred_bytes),
            (self.pred_lengths, pred_lengths),
            (self.ref_bytes, ref_bytes),
            (self.ref_lengths, ref_lengths),
            (self.ref_counts, counts),
        ):  # in the metric's dtype, as torchmetrics makes a process's empty state: every process gathers alike
            state.append(values.to(self.device, self.dtype))

    def tokenized(self) -> tuple[list[str], list[list[str]]]:
        """Return the generated captions and the references so far, tokenized by ``self.tokenizer``.

        Each caption becomes its tokens joined by single spaces. With ``"ptb"`` all captions and references go
        through one Java process.
        """
        preds, targets = self.preds, self.targets
        texts = preds + [ref for refs in targets for ref in refs]
        if self.tokenizer == "ptb":
            tokens = ptb_tokenize(texts)
        else:
            tokens = [" ".join(tokenize(text)) for text in texts]
        refs = iter(tokens[len(preds) :])
        return tokens[: len(preds)], [[next(refs) for _ in image] for image in targets]

    def coco_inputs(self) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
        """Return ``(gts, res)`` as pycocoevalcap scorers expect them.

        Both sides are tokenized by :meth:`tokenized`; keys are the image positions.
        """
        preds, targets = self.tokenized()
        return dict(enumerate(targets)), {i: [pred] for i, pred in enumerate(preds)}

    def _as_tensor(self, value: float) -> torch.Tensor:
        return torch.tensor(float(value), dtype=torch.float32, device=self.device)
