"""Pre-trained GloVe word vectors for initialising a caption decoder's embedding."""

from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from vlc.errors import UserError, warn
from vlc.vocabulary import Vocabulary


def _check_length(path: Path, lineno: int, fields: list[str], dim: int) -> None:
    """Raise ``ValueError`` naming the file and line if a line does not hold ``dim`` values."""
    if len(fields) != dim:
        raise ValueError(f"{path}, line {lineno}: expected {dim} values after the word, got {len(fields)}")


def _parse_vector(path: Path, lineno: int, fields: list[str], dim: int | None) -> np.ndarray:
    """Parse the float fields of one line, raising ``ValueError`` naming the file and line."""
    if dim is not None:
        _check_length(path, lineno, fields, dim)
    try:
        return np.array(fields, dtype=np.float32)
    except ValueError as err:
        raise ValueError(f"{path}, line {lineno}: expected floats after the word ({err})") from None


def _rows_to_fill(words: list[str]) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """Map GloVe keys to the rows they fill: exact spelling, and lower-cased spelling as a fallback."""
    exact: dict[str, list[int]] = defaultdict(list)
    lower: dict[str, list[int]] = defaultdict(list)
    for row, word in enumerate(words):
        if word in Vocabulary.SPECIALS:
            continue
        exact[word].append(row)
        if word.lower() != word:
            lower[word.lower()].append(row)
    return exact, lower


def _read_vectors(path: Path, exact: dict, lower: dict) -> tuple[int, dict[int, np.ndarray]]:
    """Stream the file; return the dimension and the vector of every row found (exact matches win)."""
    dim = None
    by_exact: dict[int, np.ndarray] = {}
    by_lower: dict[int, np.ndarray] = {}
    lineno = 0
    with path.open(encoding="utf-8") as f:
        try:
            for lineno, line in enumerate(f, start=1):
                word, _, rest = line.rstrip().partition(" ")
                if not word:
                    continue
                if dim is None:
                    dim = len(_parse_vector(path, lineno, rest.split(), None))
                    if dim == 0:
                        raise ValueError(f"{path}, line {lineno}: expected a word followed by floats")
                elif rest.count(" ") + 1 != dim:  # cheap check of every line; split only if it fails
                    _check_length(path, lineno, rest.split(), dim)
                if word in exact or word in lower:
                    vector = _parse_vector(path, lineno, rest.split(), dim)
                    for row in exact.get(word, ()):
                        by_exact.setdefault(row, vector)
                    for row in lower.get(word, ()):
                        by_lower.setdefault(row, vector)
        except UnicodeDecodeError as err:
            raise ValueError(f"{path}, line {lineno + 1}: not UTF-8 text ({err.reason})") from None
    if dim is None:
        raise ValueError(f"{path}: no word vectors in file")
    return dim, {**by_lower, **by_exact}


def load_glove(
    path: str | Path, words: list[str], std: float = 0.1, seed: int = 0
) -> tuple[torch.Tensor, int, list[str]]:
    """Build an embedding matrix for ``words`` from a GloVe text file.

    The file (``glove.6B.300d.txt`` format: one word per line followed by its space-separated floats) is
    streamed line by line, so a 1 GB file is fine. The dimension ``D`` is taken from the first line. Every
    line's number of values is checked; the floats themselves are parsed only for lines whose word is needed.

    A word is looked up as spelled, then lower-cased (an exact match wins). Rows are filled as follows:

    * found words: their GloVe vector;
    * ``<pad>``: zeros;
    * the other special tokens (``<start>``, ``<end>``, ``<unk>``) and words missing from the file: a random
      normal vector with standard deviation ``std``, from a generator seeded with ``seed``. Special tokens are
      not looked up and are not reported as missing.

    Args:
        path: GloVe text file.
        words: Vocabulary words in index order (e.g. :attr:`vlc.vocabulary.Vocabulary.words`).
        std: Standard deviation of the random vectors.
        seed: Seed of the random vectors.

    Returns:
        The ``[len(words), D]`` float32 matrix, the number of words found, and the list of missing words.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If a line has a different number of values than the first one or a value is not a float
            (the message names the file and the line number), or if the file holds no vectors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GloVe file not found: {path}")
    exact, lower = _rows_to_fill(words)
    dim, found = _read_vectors(path, exact, lower)
    generator = torch.Generator().manual_seed(seed)
    matrix = torch.randn(len(words), dim, generator=generator) * std
    for row, vector in found.items():
        matrix[row] = torch.from_numpy(vector)
    for row, word in enumerate(words):
        if word == Vocabulary.SPECIALS[Vocabulary.PAD]:
            matrix[row] = 0.0
    missing = [word for row, word in enumerate(words) if word not in Vocabulary.SPECIALS and row not in found]
    return matrix, len(found), missing


def glove_embeddings(path: str | Path, words: list[str], dim: int) -> tuple[torch.Tensor, str]:
    """The ``[len(words), dim]`` embedding matrix of :func:`load_glove` and a one-line report of what was found.

    Raises:
        UserError: the file is missing or malformed (naming the line), or its vectors are not ``dim``-dimensional.
    """
    try:
        matrix, found, missing = load_glove(path, words)
    except (OSError, ValueError) as err:
        raise UserError(f"model.glove_path: {err}") from None
    if matrix.shape[1] != dim:
        raise UserError(
            f"model.glove_path: {path} holds {matrix.shape[1]}-d vectors but the decoder's embed_dim is {dim}; "
            f"set model.decoder.init_args.embed_dim: {matrix.shape[1]}"
        )
    if found == 0:
        warn(f"{path}: no vocabulary word has a GloVe vector; is it the right file?")
    known = sum(word not in Vocabulary.SPECIALS for word in words)
    example = f" (e.g. {', '.join(missing[:5])})" if missing else ""
    return matrix, f"GloVe {path}: {found} of {known} vocabulary words found, {len(missing)} missing{example}"
