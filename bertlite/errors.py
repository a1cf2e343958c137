"""Errors bertlite raises for bad input. The CLI prints their message without a traceback."""


class BertliteError(ValueError):
    """A problem the user can fix; the message says how."""
