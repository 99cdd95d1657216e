"""User mistakes and warnings: the CLI prints their message, never a traceback."""

import sys


class UserError(Exception):
    """A problem with the user's input (a path, a file's content, a config key), explained in one message."""


def warn(message: str) -> None:
    """Tell the user about something skipped or suspicious, on one line of stderr."""
    print(f"vlc: warning: {message}", file=sys.stderr, flush=True)
