"""A captioner as ONNX files: the encoder and one decoder step, so that greedy and beam search run outside torch.

The encoder file maps uint8 images ``(N, 3, H, W)`` to the decoder's initial state and the per-image *memory* the
step reads (the attention decoder's annotation vectors and their projection; nothing for Show and Tell). The step
file maps ``tokens`` ``(M,)``, the state and the memory, one row per hypothesis, to the next token's
log-probabilities ``(M, V)`` and the new state (``new_h``, ``new_c``). Every state and memory tensor has its batch on
axis 0, so a search reorders hypotheses by indexing that axis (``vlc.onnx_predict.beam_search``).
"""

import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlc.errors import UserError
from vlc.export.onnx_file import export_onnx
from vlc.models.attention_decoder import AttentionLSTMDecoder
from vlc.models.lstm_decoder import LSTMDecoder
from vlc.onnx_format import step_file, vocab_file
from vlc.tasks.captioner import ImageCaptioner

LAYOUTS = {LSTMDecoder: (("h", "c"), ()), AttentionLSTMDecoder: (("h", "c"), ("features", "projected"))}
"""The state and memory names of each decoder vlc exports."""


def layout(decoder: nn.Module) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The names of the decoder's state and memory tensors.

    Raises:
        UserError: a decoder vlc does not know how to split into steps.
    """
    for cls, names in LAYOUTS.items():
        if type(decoder) is cls:
            return names
    known = ", ".join(cls.__name__ for cls in LAYOUTS)
    raise UserError(f"vlc export knows the decoders {known}, not {type(decoder).__name__}")


class CaptionEncoder(nn.Module):
    """Images ``(N, 3, H, W)`` uint8 -> the decoder's initial state and memory, batch first."""

    def __init__(self, task: ImageCaptioner) -> None:
        super().__init__()
        self.task = task

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        features = self.task.encode(images)  # (N, F) or (N, P, F)
        state = self.task.decoder.init_state(features)
        if isinstance(self.task.decoder, AttentionLSTMDecoder):
            h, c, a, projected = state  # (N, H), (N, H), (N, P, F), (N, P, A)
            return h, c, a, projected
        h, c = state  # (L, N, H) each
        return h.transpose(0, 1), c.transpose(0, 1)  # (N, L, H)


class CaptionStep(nn.Module):
    """One decoder step over ``M`` hypotheses: tokens ``(M,)``, state, memory -> log-probabilities ``(M, V)``, state."""

    def __init__(self, task: ImageCaptioner) -> None:
        super().__init__()
        self.decoder = task.decoder

    def forward(
        self, tokens: Tensor, h: Tensor, c: Tensor, features: Tensor | None = None, projected: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        if isinstance(self.decoder, AttentionLSTMDecoder):  # one row of h, c per row of memory: R = 1
            logits, (h, c, _, _) = self.decoder.step(tokens, (h, c, features, projected))  # (M, V), (M, H)
        else:
            state = (h.transpose(0, 1).contiguous(), c.transpose(0, 1).contiguous())  # (M, L, H) -> (L, M, H)
            logits, (h, c) = self.decoder.step(tokens, state)
            h, c = h.transpose(0, 1), c.transpose(0, 1)  # (L, M, H) -> (M, L, H)
        return F.log_softmax(logits.float(), dim=-1), h, c


def export_captioner(task: ImageCaptioner, output: Path, metadata: dict) -> list[str]:
    """Write ``output`` (the encoder), its ``.step.onnx`` and ``.vocab.json``; what was written, one line each."""
    state, memory = layout(task.decoder)
    size = metadata["image_size"]
    step_path, vocab_path = step_file(output), vocab_file(output)
    metadata = {
        **metadata,
        "decoding": dataclasses.asdict(task.decoding),
        "state": list(state),
        "memory": list(memory),
        "step": step_path.name,
        "vocab": vocab_path.name,
    }
    generator = torch.Generator().manual_seed(0)
    example = torch.randint(0, 256, (2, 3, size + 7, size + 3), dtype=torch.uint8, generator=generator)
    check = torch.randint(0, 256, (3, 3, size, size), dtype=torch.uint8, generator=generator)
    N = torch.export.Dim("N", min=1)
    image_axes = {0: N, 2: torch.export.Dim("H", min=2), 3: torch.export.Dim("W", min=2)}
    encoder = CaptionEncoder(task)
    names = [*state, *memory]
    encoded = export_onnx(
        encoder, {"images": example}, names, {"images": image_axes}, output, metadata, {"images": check}
    )
    with torch.no_grad():
        rows = dict(zip(names, encoder(check)))  # 3 hypotheses
    M = torch.export.Dim("M", min=1)
    tokens = torch.randint(0, len(task.vocab), (3,), generator=generator)
    inputs = {"tokens": tokens, **rows}
    check_rows = {name: value[[0, 2]] for name, value in rows.items()}  # another number of rows
    check_inputs = {"tokens": tokens[[1, 0]], **check_rows}
    dynamic = {name: {0: M} for name in inputs}
    if memory:  # the attention decoder: any number of grid positions (an encoder without image_size gives any)
        P = torch.export.Dim("P", min=1)
        dynamic |= {name: {0: M, 1: P} for name in memory}
    stepped = export_onnx(
        CaptionStep(task),
        inputs,
        ["log_probs", *(f"new_{name}" for name in state)],
        dynamic,
        step_path,
        metadata,
        check_inputs,
    )
    try:
        task.vocab.save(vocab_path)
    except OSError as err:
        raise UserError(f"--output: cannot write {vocab_path} ({err.strerror or err})") from None
    decoder = type(task.decoder).__name__
    return [
        f"wrote {output}: the encoder, images at {size}x{size} (largest difference from the checkpoint's "
        f"{encoded:.1g})",
        f"wrote {step_path}: one step of the {decoder} (largest difference {stepped:.1g})",
        f"wrote {vocab_path}: {len(task.vocab)} words",
    ]
