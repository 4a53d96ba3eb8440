"""User-facing errors.

Every mistake a user can make (a missing file, an unknown dataset, a bad option) raises
:class:`GanMemoryError` with one sentence that names the file, option or task at fault.
The CLI prints that sentence and exits with status 2; it never shows a traceback for it.
``assert`` is reserved for internal invariants.
"""


class GanMemoryError(Exception):
    """A problem with the user's input or stored files, explained in one message."""


class TrainingDiverged(GanMemoryError):
    """A GAN's losses stopped being finite; the run stopped before storing or checkpointing it."""

    def __init__(self, iteration: int, stats: dict[str, float]):
        self.iteration, self.stats = iteration, dict(stats)
        shown = ", ".join(f"{k}={v:.4g}" for k, v in stats.items())
        super().__init__(f"training diverged at iteration {iteration}: its losses are no longer finite ({shown})")
