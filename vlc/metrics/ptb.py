"""PTB tokenisation of captions as the COCO caption evaluation does it: Stanford's PTBTokenizer, run by Java."""

import functools
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from pycocoevalcap.tokenizer import ptbtokenizer

from vlc.errors import UserError
from vlc.metrics.java import java_runs

PTB_JAR = Path(ptbtokenizer.__file__).with_name(ptbtokenizer.STANFORD_CORENLP_3_4_1_JAR)
"""The Stanford CoreNLP 3.4.1 jar that pycocoevalcap ships."""

PTB_COMMAND = ("edu.stanford.nlp.process.PTBTokenizer", "-preserveLines", "-lowerCase")
"""The Java class and options pycocoevalcap's ``PTBTokenizer`` runs."""

LINE_BREAKS = re.compile("[\n\r\v\f\u2028\u2029]")
"""The characters the Java tokenizer starts a new line at (pycocoevalcap replaces only ``\\n``)."""


def ptb_available() -> bool:
    """Return whether PTB tokenisation can run: ``java`` starts and pycocoevalcap's jar is installed (checked once)."""
    return java_runs(PTB_JAR)


def require_ptb() -> None:
    """Raise a :class:`vlc.errors.UserError` unless :func:`ptb_available`."""
    if not ptb_available():
        raise UserError(
            'tokenizer="ptb" runs the Stanford PTBTokenizer shipped with pycocoevalcap, which needs Java: '
            f'install a Java runtime so that `java` is on the PATH (jar: {PTB_JAR}), or use tokenizer="vlc"'
        )


def ptb_tokenize(texts: Sequence[str]) -> list[str]:
    r"""Tokenise captions exactly as pycocoevalcap's ``PTBTokenizer`` does, in one Java process for all of them.

    Each caption is lower-cased and split by Stanford's PTBTokenizer (``-preserveLines -lowerCase``, one
    caption a line, fed on stdin), then the tokens in pycocoevalcap's ``PUNCTUATIONS`` (``.``, ``,``, ``'``,
    ``''``, ``:``, ``-``, ``...``, brackets as ``-LRB-`` and so on) are dropped and the rest joined by single
    spaces, as pycocoevalcap does. So ``"A man's well-known dog & cat at 5:30."`` gives
    ``"a man 's well-known dog & cat at 5:30"``. Quirks kept for equality with the COCO evaluation: brackets
    come out lower case (``-lrb-``) and are therefore *not* dropped, and a token may hold a no-break space
    (``"5 1/2"`` -> ``"5\xa01/2"``), which ``str.split()`` then splits. Unlike pycocoevalcap, every line break
    the tokenizer knows (``\r``, ``\v``, ``\f``, U+2028, U+2029, not only ``\n``) is replaced by a space
    first, so no caption can shift the others onto the wrong lines.

    A Java process costs about 0.7 s to start, plus ~0.2 s per 1000 captions. The result for the last list of
    captions is remembered, so metrics that score the same corpus (those of one ``MetricCollection``, one after
    the other) share one Java run.

    Args:
        texts: Raw captions.

    Returns:
        One string of space-separated tokens per caption, in order.

    Raises:
        UserError: If Java or the jar is missing (see :func:`ptb_available`).
        RuntimeError: If the tokenizer fails or returns another number of lines.
    """
    return list(_ptb_tokenize(tuple(texts)))


@functools.lru_cache(maxsize=1)
def _ptb_tokenize(texts: tuple[str, ...]) -> tuple[str, ...]:
    """:func:`ptb_tokenize` of a hashable argument, so that the last result can be reused."""
    if not texts:
        return ()
    require_ptb()
    lines = "".join(LINE_BREAKS.sub(" ", text) + "\n" for text in texts)
    command = [shutil.which("java") or "java", "-cp", str(PTB_JAR), *PTB_COMMAND]
    done = subprocess.run(command, input=lines.encode("utf-8"), capture_output=True, check=False)
    out = done.stdout.decode("utf-8").split("\n")
    if out and out[-1] == "":
        out.pop()
    if done.returncode != 0 or len(out) != len(texts):
        error = done.stderr.decode("utf-8", errors="replace").strip()[-2000:]
        raise RuntimeError(
            f"PTBTokenizer (exit code {done.returncode}) returned {len(out)} lines for {len(texts)} captions: {error}"
        )
    punctuation = set(ptbtokenizer.PUNCTUATIONS)
    return tuple(" ".join(token for token in line.rstrip().split(" ") if token not in punctuation) for line in out)
