"""User mistakes and warnings: the CLI prints their message, never a traceback."""

import argparse
import os
import re
import sys


class UserError(Exception):
    """A problem with the user's input (a path, a file's content, a config key), explained in one message."""

    exit_code = 2
    """The process exit code the CLI ends with."""


class Diverged(UserError):
    """Training stopped because the loss or the weights are no longer finite numbers (NaN or infinity)."""

    exit_code = 3


SPAWNED = re.compile(r"^vlc\.errors\.(UserError|Diverged): (.+)$", re.MULTILINE)
"""The last line of a child process's traceback that torch's ``ProcessRaisedException`` carries."""


def find_user_error(err: BaseException) -> UserError | None:
    """The ``UserError`` behind ``err``: itself, one in its cause chain, or one whose message it embeds."""
    seen = err
    while seen is not None:
        if isinstance(seen, UserError):
            return seen
        seen = seen.__cause__ or seen.__context__
    spawned = SPAWNED.findall(str(err))  # raised in a DDP process that torch spawned: its traceback as text
    if spawned:
        name, message = spawned[-1]
        return Diverged(message) if name == "Diverged" else UserError(message)
    return None


PEER_GONE = ("Connection closed by peer", "Connection reset by peer")
"""What gloo and torch's c10d store say when another process of a distributed run has gone."""


def lost_peer(err: BaseException) -> str | None:
    """The one-line message for ``err`` when it is this process losing another one of its distributed run, else None.

    Under torchrun or SLURM each process is a ``vlc`` of its own: when one stops with an error (its own one line), the
    others fail in their next collective call with gloo's connection error, which says nothing the user can act on.
    """
    text = str(err).strip()
    if not isinstance(err, RuntimeError) or not any(marker in text for marker in PEER_GONE):
        return None
    rank = os.environ.get("RANK", os.environ.get("SLURM_PROCID"))
    this = f"this one (rank {rank})" if rank is not None else "this one"
    reason = text.splitlines()[0][:300]
    return (
        f"another process of this run stopped first, so {this} cannot go on; that process's output says why ({reason})"
    )


def warn(message: str) -> None:
    """Tell the user about something skipped or suspicious, on one line of stderr."""
    print(f"vlc: warning: {message}", file=sys.stderr, flush=True)


def given(value: str | None) -> str | None:
    """``value``, or None when it means "not set".

    Nested ``--...=null`` overrides can reach a ``str | None`` argument as the string "None" (jsonargparse 4.53),
    which must not be taken for a file name.
    """
    return None if value in (None, "", "None", "none", "null") else value


class OneLineArgumentParser(argparse.ArgumentParser):
    """``argparse`` whose mistakes (a missing or unknown option, a bad value) are a ``UserError``: one line."""

    def error(self, message: str) -> None:  # noqa: D102 (argparse's hook)
        raise UserError(f"{self.prog}: {message} (see {self.prog} --help)")
