"""PNG plots (matplotlib with the Agg backend, written atomically)."""

from __future__ import annotations

import os
from typing import Sequence

from .atomic import atomic_write


Curves = dict[str, tuple[Sequence[float], Sequence[float]]]  # name -> (xs, ys)


def plot_curves(curves: Curves, path: str | os.PathLike, *, title: str, xlabel: str, ylabel: str) -> None:
    """One line per curve name: (xs, ys)."""
    plot_panels({title: curves}, path, xlabel=xlabel, ylabel=ylabel)


def plot_panels(panels: dict[str, Curves], path: str | os.PathLike, *, xlabel: str, ylabel: str,
                suptitle: str | None = None) -> None:
    """Side-by-side panels, one per title, each with its own curves (legend when more than one)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), dpi=100, squeeze=False)
    for ax, (title, curves) in zip(axes[0], panels.items()):
        for name, (xs, ys) in curves.items():
            ax.plot(list(xs), list(ys), marker="o", markersize=3, label=name)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if len(curves) > 1:
            ax.legend(fontsize="small")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
