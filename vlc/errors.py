"""The one exception type for user mistakes: the CLI prints its message, never a traceback."""


class UserError(Exception):
    """A problem with the user's input (a path, a file's content, a config key), explained in one message."""
