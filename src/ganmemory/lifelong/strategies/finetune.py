"""Fine-tuning: train on each new task's real data only; no replay, no penalty (the lower bound)."""

from __future__ import annotations

from .base import Strategy


class Finetune(Strategy):
    """Plain sequential training: everything the base :class:`Strategy` does, nothing more."""

    name = "finetune"
