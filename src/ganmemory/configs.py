"""Shared by the typed configs (NetConfig, TrainConfig)."""

from __future__ import annotations

from dataclasses import fields
from typing import TypeVar

from .errors import GanMemoryError

T = TypeVar("T")


def config_from_dict(cls: type[T], d: dict, what: str) -> T:
    """Build a config dataclass from a dict; unknown keys are an error, not ignored."""
    unknown = set(d) - {f.name for f in fields(cls)}
    if unknown:
        raise GanMemoryError(f"unknown {what} option(s): {', '.join(sorted(unknown))}")
    return cls(**d)
