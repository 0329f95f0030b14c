"""The one error type the CLI prints as a single line (never a traceback)."""


class LabCommandError(Exception):
    """A problem the user can fix; the message says what to do."""
