"""The memory bank: one frozen source and one small file per learned task.

On disk::

    BANK/bank.json                 format, version, the source's hash
    BANK/source.safetensors        the frozen source (G = EMA generator, D)
    BANK/tasks/NAME.safetensors    task parameters: G (EMA, used to sample), G_train, D, optimizers;
                                   the header holds the task's metadata (the authoritative copy)
    BANK/tasks/NAME.json           the same metadata, for people and tools
    BANK/bases.safetensors         bases shared by the bank's tasks: orthonormal ones grown by
                                   ``compress --shared``, and the columns tasks learned with
                                   ``--lowrank`` add; they only ever grow, so every task's column
                                   prefix stays valid
    BANK/work/NAME/                an unfinished ``learn``: checkpoint, log, samples
    BANK/locks/NAME.lock           one writer per task name (``locks.py``)
    BANK/plots/NAME.png            ``learn --eval-every``: the task's score against iterations,
    BANK/plots/NAME/               and a sample grid beside every score

Every file is written atomically, and a task file appears only when its training has ended,
so an interrupted ``learn`` leaves every earlier task as it was.
"""

from __future__ import annotations

from .bank.disk import Leftover, TaskInfo
from .bank.drawing import Drawing
from .bank.learning import Learning

__all__ = ["MemoryBank", "TaskInfo", "Leftover"]


class MemoryBank(Drawing, Learning):
    """A bank of tasks over one frozen source. ``MemoryBank.create`` makes one, the
    constructor opens one.

    Its jobs live in ``ganmemory.bank``: ``disk`` (files, checks, remove, merge), ``drawing``
    (sample, interpolate), ``learning`` (learn, resume, scores while learning) and ``lowrank``
    (compress, ``--lowrank`` tasks)."""
