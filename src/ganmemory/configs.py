"""Shared by the typed configs (NetConfig, TrainConfig, LifelongConfig, LowRankConfig)."""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any, TypeVar

from .errors import GanMemoryError

T = TypeVar("T")

MAX_SEED = 2**63 - 1  # torch generators take seeds below 2^64; step seeds are derived mod 2^63


def option_name(field: str) -> str:
    """How the command line spells a config field: ``r1_gamma`` -> ``--r1-gamma``."""
    return "--" + field.replace("_", "-")


def check_types(cfg: Any, flags: dict[str, str] | None = None) -> None:
    """Every field of the dataclass ``cfg`` holds a value of its declared type (an int is a
    float too; a bool is not an int), and every float is finite. Called first by each config's
    ``__post_init__``, so a NaN, an inf or a string never reaches a range check or a file.
    ``flags`` names the command-line option of fields the CLI spells otherwise."""
    for f in fields(cfg):
        v, kind = getattr(cfg, f.name), str(f.type)
        opt = (flags or {}).get(f.name, option_name(f.name))
        if kind == "float":
            ok = isinstance(v, (int, float)) and not isinstance(v, bool)
            if ok and not math.isfinite(v):
                raise GanMemoryError(f"option {opt} must be a finite number, got {v}")
        elif kind == "int":
            ok = isinstance(v, int) and not isinstance(v, bool)
        elif kind == "bool":
            ok = isinstance(v, bool)
        elif kind == "str":
            ok = isinstance(v, str)
        else:
            continue
        if not ok:
            raise GanMemoryError(f"option {opt} must be {'an' if kind == 'int' else 'a'} {kind}, "
                                 f"got {v!r}")


def check_seed(seed: int, option: str = "--seed") -> int:
    if not 0 <= seed <= MAX_SEED:
        raise GanMemoryError(f"option {option} must be in [0, 2^63 - 1], got {seed}")
    return seed


def config_from_dict(cls: type[T], d: Any, what: str) -> T:
    """Build a config dataclass from a dict; unknown keys are an error, not ignored."""
    if not isinstance(d, dict):
        raise GanMemoryError(f"the {what} options must be an object, got {type(d).__name__}")
    unknown = set(d) - {f.name for f in fields(cls)}
    if unknown:
        raise GanMemoryError(f"unknown {what} option(s): {', '.join(sorted(unknown))}")
    return cls(**d)
