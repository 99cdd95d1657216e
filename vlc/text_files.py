"""Annotation files as users write them (class lists, caption JSON, label CSVs): their text, the file names in them."""

import os
from pathlib import Path

from vlc.errors import UserError


def read_text(path: str | Path) -> str:
    """The text of ``path`` as UTF-8, with a byte order mark (what many Windows editors write) accepted.

    Line endings are left as they are (``str.splitlines`` handles CRLF).

    Raises:
        UserError: the file cannot be read, or is not UTF-8 (naming the line and the byte).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise UserError(f"{path}: cannot read ({err.strerror or err})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        byte = data[err.start]
        raise UserError(f"{path}, line {line}: not UTF-8 text (byte 0x{byte:02x}); save the file as UTF-8") from None


def inside(name: str) -> str | None:
    """``name`` normalised (``a/./b`` as ``a/b``) when it is a relative path that stays inside its folder, else None.

    The check is on the name alone (an absolute path, or ``..`` leading out of the folder), so a data folder made
    of symbolic links to files elsewhere still works.
    """
    relative = os.path.normpath(name)
    if os.path.isabs(relative) or relative.split(os.sep)[0] == "..":
        return None
    return relative
