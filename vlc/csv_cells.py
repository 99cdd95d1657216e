"""Every CSV file vlc writes goes through :func:`write_rows`, so that a spreadsheet never runs a cell as a formula.

A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a formula to Excel, LibreOffice
and Google Sheets (CSV injection): it is written with a leading ``'``, OWASP's advice, which a spreadsheet shows as text
and a program reading the file strips (:func:`uncell`; a text that already starts with ``'`` before such a character
gets one more, so that stripping one gives it back). Numbers are written as they are.
"""

import csv
from collections.abc import Iterable
from typing import IO, Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """``value`` as a CSV cell a spreadsheet shows as text: ``=HYPERLINK(..)`` -> ``'=HYPERLINK(..)``."""
    return "'" + value if isinstance(value, str) and value.lstrip("'").startswith(FORMULA_STARTS) else value


def uncell(text: str) -> str:
    """The value :func:`cell` wrote: ``'=HYPERLINK(..)`` -> ``=HYPERLINK(..)``; any other text as it is."""
    return text[1:] if text.startswith("'") and text.lstrip("'").startswith(FORMULA_STARTS) else text


def write_rows(f: IO[str], header: Iterable[Any], rows: Iterable[Iterable[Any]]) -> int:
    """Write ``header`` and ``rows`` as CSV into ``f`` (opened with ``newline=""``), every cell through :func:`cell`.

    Returns:
        How many cells got a leading ``'``.
    """
    writer, changed = csv.writer(f), 0
    for row in [header, *rows]:
        values = list(row)
        cells = [cell(value) for value in values]
        changed += sum(new is not old for new, old in zip(cells, values))
        writer.writerow(cells)
    return changed
