"""A captioner's prediction rows from its ONNX files: the encoder, then greedy or beam search over the decoder step.

The columns of ``vlc predict`` (``ImageCaptioner.predict_step``): ``file``, ``caption``, ``score`` (the
length-normalised log-probability), and with ``num_captions > 1`` the ``alternatives`` (caption, score).
"""

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from vlc.errors import UserError
from vlc.onnx_predict.beam_search import search
from vlc.vocabulary import Vocabulary

DECODING = ("strategy", "beam_width", "max_len", "length_penalty", "min_len", "no_repeat_ngram", "banned_endings")
DECODING += ("num_captions",)


def load_vocabulary(path: Path) -> Vocabulary:
    """The vocabulary written beside the encoder.

    Raises:
        UserError: it is missing or not a vocabulary file.
    """
    try:
        return Vocabulary.load(path)
    except (FileNotFoundError, ValueError) as err:
        raise UserError(f"{path}: {err} (vlc export writes it beside the encoder)") from None


def check_decoding(decoding: dict, vocab: Vocabulary) -> dict:
    """The decoding options, checked as ``vlc.models.decoding.Decoding`` checks them (messages name the flags).

    Raises:
        UserError: a value out of range, ``num_captions`` above what the strategy keeps, or an unknown word.
    """
    if decoding["strategy"] not in ("greedy", "beam"):
        raise UserError(f"--strategy: expected greedy or beam, got {decoding['strategy']!r}")
    minimum = {"beam_width": 1, "max_len": 1, "min_len": 1, "num_captions": 1, "no_repeat_ngram": 0}
    for name, least in minimum.items():
        if decoding[name] < least:
            raise UserError(f"--{name}: expected at least {least}, got {decoding[name]}")
    most = decoding["beam_width"] if decoding["strategy"] == "beam" else 1
    if decoding["num_captions"] > most:
        raise UserError(
            f"--num_captions: {decoding['num_captions']} captions need --strategy beam with a --beam_width of at "
            f"least {decoding['num_captions']} (got {decoding['strategy']}, beam_width {decoding['beam_width']})"
        )
    unknown = [w for w in decoding["banned_endings"] if vocab.index(w) < len(Vocabulary.SPECIALS)]
    if unknown:
        raise UserError(f"--banned_endings: {unknown} are not words of the vocabulary")
    return decoding


class Captioner:
    """The encoder and decoder step sessions of an exported captioner, and what they need to search.

    Args:
        encoder: the encoder's session.
        step: the decoder step's session.
        record: the encoder's metadata (``state``, ``memory``).
        vocab: the vocabulary.
    """

    def __init__(self, encoder: Any, step: Any, record: dict, vocab: Vocabulary) -> None:
        self.encoder, self.step_session, self.vocab = encoder, step, vocab
        self.state_names, self.memory_names = list(record["state"]), list(record["memory"])
        self.ids = {word: vocab.index(word) for word in vocab.words}

    def encode(self, images: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The decoder's initial state and the memory of a uint8 batch ``(B, 3, H, W)``, one row per image."""
        names = self.state_names + self.memory_names
        values = dict(zip(names, self.encoder.run(names, {"images": images})))
        return {n: values[n] for n in self.state_names}, {n: values[n] for n in self.memory_names}

    def rows(self, batches: Iterable[tuple[list[str], np.ndarray]], decoding: dict) -> list[dict]:
        """One row per image, as ``vlc predict`` writes it (see the module docstring)."""
        n, rows = decoding["num_captions"], []
        for files, images in batches:
            state, memory = self.encode(images)

            def step(tokens, state, image_rows, memory=memory):
                feeds = {"tokens": tokens, **state, **{k: v[image_rows] for k, v in memory.items()}}
                out = self.step_session.run(["log_probs", *(f"new_{k}" for k in self.state_names)], feeds)
                return out[0], dict(zip(self.state_names, out[1:]))

            tokens, scores = search(step, state, decoding, self.ids, n)  # (B, R, L), (B, R)
            for file, image_tokens, image_scores in zip(files, tokens, scores.tolist()):
                captions = [self.vocab.decode(row) for row in image_tokens]
                if n == 1:
                    rows.append({"file": file, "caption": captions[0], "score": round(image_scores[0], 6)})
                    continue
                alternatives = [[c, round(s, 6)] for c, s in zip(captions, image_scores) if math.isfinite(s)]
                rows.append({"file": file, "caption": captions[0], "score": alternatives[0][1]})
                rows[-1]["alternatives"] = alternatives
        return rows


def decoding_options(record: dict, given: dict) -> dict:
    """The checkpoint's decoding (the export's metadata) with the options given on the command line over it."""
    decoding = dict(record["decoding"])
    decoding.update({k: v for k, v in given.items() if v is not None})
    return decoding
