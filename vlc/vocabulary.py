"""Word vocabulary for captioning: tokenisation, encoding/decoding and JSON serialisation.

The tokenizer needs no downloaded NLTK data (no ``punkt``): it is NLTK's regular-expression
``wordpunct_tokenize`` applied to lower-cased text, with pure-punctuation tokens dropped. The same
:func:`tokenize` is used by the caption metrics, so that training targets and evaluation see the same words.
"""

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

FORMAT_NAME = "vlc.vocabulary"
FORMAT_VERSION = 1


def tokenize(text: str) -> list[str]:
    r"""Split a caption into lower-case word tokens, dropping punctuation.

    ``wordpunct_tokenize`` splits on the pattern ``\w+|[^\w\s]+``; every token without a single
    alphanumeric character (``","``, ``"."``, ``"'"``, ``"--"``, ``"_"``) is dropped. Contractions are split
    at the apostrophe: ``"a man's hat"`` -> ``["a", "man", "s", "hat"]``.

    Args:
        text: Raw caption.

    Returns:
        The tokens, in order.
    """
    from nltk.tokenize import wordpunct_tokenize  # here: decoding ids (the ONNX predictor) needs no nltk

    return [tok for tok in wordpunct_tokenize(text.lower()) if any(ch.isalnum() for ch in tok)]


class Vocabulary:
    """Bidirectional mapping between words and integer ids.

    Ids ``0..3`` are the special tokens ``<pad>``, ``<start>``, ``<end>`` and ``<unk>``; regular words follow
    in the order given to the constructor.

    Args:
        words: Regular words (without the special tokens), in index order. Must be unique.

    Raises:
        ValueError: If a word is duplicated, is a special token, or is not a non-empty string.
    """

    PAD = 0
    START = 1
    END = 2
    UNK = 3
    SPECIALS = ("<pad>", "<start>", "<end>", "<unk>")

    def __init__(self, words: Iterable[str] = ()) -> None:
        self._words = list(self.SPECIALS)
        self._index = {word: i for i, word in enumerate(self._words)}
        for word in words:
            if not isinstance(word, str) or not word:
                raise ValueError(f"vocabulary words must be non-empty strings, got {word!r}")
            if word in self._index:
                raise ValueError(f"duplicate or special word in vocabulary: {word!r}")
            self._index[word] = len(self._words)
            self._words.append(word)

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 1, max_size: int | None = None) -> "Vocabulary":
        """Build a vocabulary from raw captions.

        Words are ordered by descending count, ties broken alphabetically, so the result does not depend on
        the order of the captions.

        Args:
            captions: Raw caption strings, tokenized with :func:`tokenize`.
            min_count: Keep only words seen at least this many times.
            max_size: Maximum total size of the vocabulary, *including* the 4 special tokens; the most
                frequent words are kept. ``None`` for no limit.

        Returns:
            The vocabulary.

        Raises:
            ValueError: If ``min_count < 1`` or ``max_size < 4``.
        """
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        if max_size is not None and max_size < len(cls.SPECIALS):
            raise ValueError(f"max_size must be >= {len(cls.SPECIALS)} (the special tokens), got {max_size}")
        counts = Counter(tok for caption in captions for tok in tokenize(caption))
        for special in cls.SPECIALS:
            counts.pop(special, None)
        kept = [(word, n) for word, n in counts.items() if n >= min_count]
        ranked = sorted(kept, key=lambda item: (-item[1], item[0]))
        if max_size is not None:
            ranked = ranked[: max_size - len(cls.SPECIALS)]
        return cls(word for word, _ in ranked)

    def __len__(self) -> int:
        return len(self._words)

    def __contains__(self, word: object) -> bool:
        return word in self._index

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return self._words == other._words

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={len(self)})"

    @property
    def words(self) -> list[str]:
        """All words in index order, special tokens first (a copy)."""
        return list(self._words)

    def index(self, word: str) -> int:
        """Return the id of ``word``, or :attr:`UNK` if it is not in the vocabulary."""
        return self._index.get(word, self.UNK)

    def encode(self, text: str, max_len: int) -> list[int]:
        """Encode a caption as ``<start> tokens... <end>`` ids, without padding.

        Args:
            text: Raw caption, tokenized with :func:`tokenize`; unknown words become :attr:`UNK`.
            max_len: Maximum length of the result, ``<start>`` and ``<end>`` included; longer captions are
                truncated (the ``<end>`` token is always kept).

        Returns:
            The ids, of length at most ``max_len``.

        Raises:
            ValueError: If ``max_len < 2``.
        """
        if max_len < 2:
            raise ValueError(f"max_len must be >= 2 to hold <start> and <end>, got {max_len}")
        ids = [self.index(tok) for tok in tokenize(text)[: max_len - 2]]
        return [self.START, *ids, self.END]

    def decode(self, ids: "Sequence[int] | torch.Tensor") -> str:
        """Turn ids back into a space-joined caption.

        Decoding stops at the first ``<end>``; ``<pad>`` and ``<start>`` are skipped; ``<unk>`` is kept as the
        literal string ``"<unk>"``.

        Args:
            ids: A sequence of ints or a 1-D integer tensor or array.

        Returns:
            The caption.

        Raises:
            ValueError: If ``ids`` is a tensor that is not 1-D, or holds an id outside the vocabulary.
        """
        if hasattr(ids, "tolist"):  # a tensor or an array (no torch import: the ONNX predictor decodes without it)
            if len(ids.shape) != 1:
                raise ValueError(f"decode expects a 1-D tensor, got shape {tuple(ids.shape)}")
            ids = ids.tolist()
        words = []
        for i in ids:
            i = int(i)
            if i == self.END:
                break
            if i in (self.PAD, self.START):
                continue
            if not 0 <= i < len(self._words):
                raise ValueError(f"id {i} is outside the vocabulary (size {len(self._words)})")
            words.append(self._words[i])
        return " ".join(words)

    def to_dict(self) -> dict[str, Any]:
        """Return a plain JSON-able dict (e.g. to store in a checkpoint's hyper-parameters)."""
        return {"format": FORMAT_NAME, "version": FORMAT_VERSION, "words": self.words}

    @classmethod
    def from_dict(cls, data: Any) -> "Vocabulary":
        """Rebuild a vocabulary from :meth:`to_dict`'s output.

        Args:
            data: The dict.

        Returns:
            The vocabulary.

        Raises:
            ValueError: If ``data`` is not a valid vocabulary dict; the message says what is wrong.
        """
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        if data.get("format") != FORMAT_NAME:
            raise ValueError(f"expected 'format' to be {FORMAT_NAME!r}, got {data.get('format')!r}")
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"unsupported version {data.get('version')!r} (supported: {FORMAT_VERSION})")
        words = data.get("words")
        if not isinstance(words, list):
            raise ValueError(f"expected 'words' to be a list, got {type(words).__name__}")
        if tuple(words[: len(cls.SPECIALS)]) != cls.SPECIALS:
            raise ValueError(f"'words' must start with the special tokens {list(cls.SPECIALS)}")
        return cls(words[len(cls.SPECIALS) :])

    def save(self, path: str | Path) -> None:
        """Write the vocabulary to ``path`` as JSON (parent folders are created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        """Read a vocabulary written by :meth:`save`.

        Args:
            path: JSON file.

        Returns:
            The vocabulary.

        Raises:
            FileNotFoundError: If the file does not exist.
            ValueError: If the file is not a valid vocabulary file; the message names the file and what is
                wrong.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"vocabulary file not found: {path}")
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except UnicodeDecodeError as err:
            raise ValueError(f"invalid vocabulary file {path}: not UTF-8 text ({err.reason})") from None
        except json.JSONDecodeError as err:
            raise ValueError(f"invalid vocabulary file {path}: not valid JSON ({err})") from None
        except ValueError as err:
            raise ValueError(f"invalid vocabulary file {path}: {err}") from None


def vocab_difference(saved: Vocabulary, current: Vocabulary) -> str:
    """One line saying how two vocabularies differ (sizes and the first differing word)."""
    for i, (a, b) in enumerate(zip(saved.words, current.words)):
        if a != b:
            return f"{len(saved)} vs {len(current)} words, first difference at id {i}: {a!r} vs {b!r}"
    return f"{len(saved)} vs {len(current)} words"
