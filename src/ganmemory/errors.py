"""User-facing errors.

Every mistake a user can make (a missing file, an unknown dataset, a bad option) raises
:class:`GanMemoryError` with one sentence that names the file, option or task at fault.
The CLI prints that sentence and exits with status 2; it never shows a traceback for it.
``assert`` is reserved for internal invariants.
"""


class GanMemoryError(Exception):
    """A problem with the user's input or stored files, explained in one message."""
