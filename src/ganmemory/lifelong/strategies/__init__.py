"""Continual-learning strategies, one module each, looked up by name.

Every strategy module is imported only when asked for (``get_strategy``), so the package works
without the optional ones and a strategy's heavy imports (GAN memory) cost nothing to the others.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import NamedTuple

from ...errors import GanMemoryError
from .base import ReplayPool, Strategy, StrategyOptions


class StrategyEntry(NamedTuple):
    module: str  # sub-module of this package, or "" for a class registered with ``register_strategy``
    cls: str | type[Strategy]  # class name in it, or the class itself
    description: str  # one line for --help


STRATEGIES: dict[str, StrategyEntry] = {
    "finetune": StrategyEntry("finetune", "Finetune", "new task's data only, no replay (lower bound)"),
    "ewc": StrategyEntry("ewc", "EWC", "elastic weight consolidation, Fishers summed over tasks"),
    "joint": StrategyEntry("joint", "Joint", "real data of every task so far (upper bound)"),
    "gan-memory": StrategyEntry("gan_memory", "GanMemoryReplay",
                                "replay of generated samples of every earlier task from a GAN memory"),
    "mergan": StrategyEntry("mergan", "MerGAN", "replay from one conditional GAN that replays itself (MeRGAN)"),
}


def register_strategy(name: str, cls: type[Strategy], description: str) -> None:
    """Add a strategy defined elsewhere (a plugin, a test); ``lifelong --strategy NAME`` and its
    options appear on the command line built after this call."""
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise GanMemoryError(f"strategy '{name}' must be a subclass of Strategy")
    if name in STRATEGIES:
        raise GanMemoryError(f"a strategy called '{name}' is already registered")
    STRATEGIES[name] = StrategyEntry("", cls, description)


def get_strategy(name: str) -> type[Strategy]:
    """The strategy class called ``name`` (a key of ``STRATEGIES``), imported on first use."""
    if name not in STRATEGIES:
        raise GanMemoryError(f"unknown strategy '{name}'; known: {', '.join(STRATEGIES)}")
    entry = STRATEGIES[name]
    if not isinstance(entry.cls, str):
        return entry.cls
    module_name = f"{__name__}.{entry.module}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise  # a dependency of the strategy is missing: show the real error
        raise GanMemoryError(f"strategy '{name}' is not available in this installation "
                             f"(module {module_name} is missing)") from exc
    return getattr(module, entry.cls)


def strategy_options(name: str) -> list[str]:
    """The option fields strategy ``name`` has beyond the shared ones: its ``config_fields``, then
    the fields of its ``Options``."""
    cls = get_strategy(name)
    return list(cls.config_fields) + [f.name for f in dataclasses.fields(cls.Options)]


__all__ = ["STRATEGIES", "ReplayPool", "Strategy", "StrategyEntry", "StrategyOptions", "get_strategy",
           "register_strategy", "strategy_options"]
