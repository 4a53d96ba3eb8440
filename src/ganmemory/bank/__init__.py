"""The memory bank's jobs, one module each; ``ganmemory.memory.MemoryBank`` puts them together.

- ``disk``: the bank's folder, task files and their checks, shared bases, remove, merge, leftovers;
- ``drawing``: sample, sample by class, every task in one pass, interpolate;
- ``learning``: learn a task, resume it, score it while it learns;
- ``lowrank``: compress stored tasks, and tasks learned in the bank's trained bases.
"""
