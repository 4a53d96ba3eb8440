"""Turning a wall-clock budget into a fixed number of learning iterations.

A run sized this way is still an ordinary run of so many iterations: it is resumable, and
``--iters`` with the printed count learns as many anywhere (bit for bit the same run on a machine
of the same kind, as any seeded run). Only the count depends on the machine that sized it.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path

from .errors import GanMemoryError
from .memory import MemoryBank
from .train import TrainConfig


def seconds_per_step(data_spec: str, cfg: TrainConfig, *, source: str | os.PathLike | None = None,
                     steps: int = 20, repeats: int = 2, scratch: str | os.PathLike | None = None) -> float:
    """Seconds per learning step of a task on ``data_spec`` under ``cfg`` (its ``iters`` ignored),
    from throw-away runs of ``steps`` and ``4 * steps`` over ``source`` in a temporary bank
    (under ``scratch``, else the system's temporary folder; removed at the end).

    The difference of the two cancels what every run's timed part costs besides its steps (the
    final checkpoint, the loop's set-up), which a single short run would spread over its few
    steps, and so overestimate a long run's step. A one-step run before them takes the costs only
    a process's first steps pay (decoding the data into the cache on a fresh machine, setting up
    the kernels), which would otherwise fall on the short run alone, shrink the difference and
    so size the budgeted run too long. The pair runs ``repeats`` times, alternating, and each
    length keeps its fastest time: another process can only add time, so the minimum is the
    least disturbed measurement."""
    if steps < 1:
        raise GanMemoryError(f"calibration needs at least 1 step, got {steps}")
    if repeats < 1:
        raise GanMemoryError(f"calibration needs at least 1 repeat, got {repeats}")
    quiet = replace(cfg, sample_every=0, ckpt_every=0, log_every=4 * steps)
    lengths = (1,) + (steps, 4 * steps) * repeats
    with tempfile.TemporaryDirectory(prefix="ganmemory-calibrate-", dir=scratch) as tmp:
        bank = MemoryBank.create(Path(tmp) / "bank", source)
        seconds = [bank.learn(f"t{i}", data_spec, replace(quiet, iters=n), progress=False,
                              log=lambda _: None)["seconds"] for i, n in enumerate(lengths)]
    short, long = min(seconds[1::2]), min(seconds[2::2])
    # on a machine noisy enough to make the longer run no slower, fall back to its plain mean
    return (long - short) / (3 * steps) if long > short else long / (4 * steps)


def iterations_for(seconds: float, per_step: float, *, multiple: int = 50, least: int = 50) -> int:
    """The iterations that fit ``seconds`` at ``per_step`` seconds each, rounded down to a
    ``multiple`` (tidy counts to quote and repeat) and at least ``least``."""
    if not (seconds > 0 and per_step > 0):
        raise GanMemoryError(f"a time budget needs positive seconds, got {seconds:g} s at {per_step:g} s per step")
    return max(least, int(seconds / per_step) // multiple * multiple)
