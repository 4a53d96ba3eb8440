"""PNG plots (matplotlib with the Agg backend, written atomically)."""

from __future__ import annotations

import os
from typing import Sequence

from .atomic import atomic_write


def plot_curves(curves: dict[str, tuple[Sequence[float], Sequence[float]]], path: str | os.PathLike, *,
                title: str, xlabel: str, ylabel: str) -> None:
    """One line per curve name: (xs, ys)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for name, (xs, ys) in curves.items():
        ax.plot(list(xs), list(ys), marker="o", markersize=3, label=name)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
