"""The one rule by which a run derives the seed of each of its random draws.

A run has one seed (``--seed``). Every random draw inside it (the batch order of an epoch, the
noise of a step, a task's replay pool, a judge's initialisation, ...) gets its own seed from the
run's seed and the draw's name and position, e.g. ``derive_seed(seed, "replay-pool", task)``:

    the first 8 bytes of sha256("SEED/NAME/KEY/KEY..."), big-endian, shifted right by one bit

so seeds are 63-bit non-negative integers (what ``torch.Generator.manual_seed`` takes), and two
different draws share a seed only by a sha256 collision. Names are fixed strings without "/",
and each name always comes with the same number of integer keys, so the text is unambiguous.

Runs made before this rule existed derived their seeds by arithmetic (e.g. ``seed * 1000 + j``),
which gave two draws the same seed in some runs (mergan's pools once a sequence had 10 tasks).
Their stored configs say ``seeds = "legacy"`` and ``LEGACY`` reproduces those draws, so a resumed
old run continues exactly as it began.
"""

from __future__ import annotations

import hashlib
from typing import Callable

import torch

from .errors import GanMemoryError

RULES = ("sha256", "legacy")
"""``TrainConfig.seeds`` and ``LifelongConfig.seeds``: the rule of new runs, and that of runs made before it."""

LEGACY: dict[str, Callable[..., int]] = {
    "epoch": lambda s, epoch: s * 1_000_003 + epoch,
    "short-batch": lambda s, it: s * 7_919 + it,
    "step": lambda s, it: (s * 2_147_483_647 + it * 65_537) % (2**63),
    "task": lambda s, index: s * 10_007 + index,
    "replay-pool": lambda s, task: s * 1000 + task,
    "mergan-pool": lambda s, index, task: s * 1000 + 100 * index + task,
    "mergan-gan": lambda s, index: s + index,
    "fisher": lambda s, index: s * 1_000_003 + 7_777 + index,
    "judge": lambda s, index: s * 1000 + index + 7919,
}
"""The arithmetic of runs made before the sha256 rule, by draw name."""


def derive_seed(seed: int, name: str, *keys: int, rule: str = "sha256") -> int:
    """The seed of draw ``name`` at position ``keys`` of a run seeded ``seed``."""
    if rule == "legacy":
        if name not in LEGACY:
            raise GanMemoryError(f"draw '{name}' has no legacy seed rule")
        return LEGACY[name](int(seed), *keys)
    if rule != "sha256":
        raise GanMemoryError(f"unknown seed rule '{rule}': use {' or '.join(RULES)}")
    if "/" in name:
        raise GanMemoryError(f"a draw name may not contain '/': '{name}'")
    text = "/".join([str(int(seed)), name, *(str(int(k)) for k in keys)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def generator(seed: int, name: str, *keys: int, rule: str = "sha256") -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``derive_seed(seed, name, *keys, rule=rule)``."""
    return torch.Generator().manual_seed(derive_seed(seed, name, *keys, rule=rule))
