"""The strategy interface and the replay pool that replaying strategies fill.

A strategy is a small plugin around the runner's loop (``runner.py``); the runner calls only
the methods of :class:`Strategy`, in this order for task ``index``::

    before_task -> train_arrays -> (replay, penalty) at every step -> evaluation -> after_task
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..classifier import Classifier, to_input
from ..config import LifelongConfig
from ..tasks import ClassTask, TaskData


class Strategy:
    """One continual-learning strategy; a small plugin around the runner's loop.

    The base class is plain fine-tuning: train on the current task's real data only, no replay,
    no penalty. Subclasses override what they change.

    Args:
        cfg: the run's options (``cfg.replay_pool``, ``cfg.ewc_lambda``, ... are read from it).
        out: the run's output folder; a strategy may keep its own files under it.
        log: prints one line for the user (the runner passes its ``log``).
    """

    name: str = "base"

    def __init__(self, cfg: LifelongConfig, out: Path, log: Callable[[str], None]) -> None:
        self.cfg, self.out, self.log = cfg, Path(out), log

    def before_task(self, model: Classifier, index: int, task: ClassTask, data: TaskData,
                    seen: list[ClassTask]) -> None:
        """Called before training task ``index`` (``seen`` = the tasks before it, in order)."""

    def train_arrays(self, index: int, task: ClassTask, data: TaskData) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 images [N, R, R, 3], global labels int64 [N]) of REAL data to train on for this
        task; the default is the task's train set."""
        return data.train_images, data.train_labels

    def replay(self, n_current: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Extra (float images [M, 3, R, R] in [-1, 1], global labels int64 [M]) appended to each
        batch of ``n_current`` real images, drawn with ``gen`` (a CPU generator, a pure function of
        the seed, task and step); the default is None (no replay)."""
        return None

    def penalty(self, model: Classifier) -> torch.Tensor | None:
        """A scalar added to the loss before backward (EWC); the default is None."""
        return None

    def after_task(self, model: Classifier, index: int, task: ClassTask, data: TaskData) -> None:
        """Called after training and evaluating task ``index``; must not change ``model``."""

    def summary(self) -> dict:
        """JSON-able facts about the strategy for results.json (e.g. memory size); default {}."""
        return {}


class ReplayPool:
    """Per earlier task, a pool of images and their global labels to replay.

    Pools hold uint8 images [M, R, R, 3] (4x smaller; e.g. generated images passed through
    ``ganmemory.images.to_uint8`` and permuted to NHWC) or float images [M, 3, R, R] in [-1, 1], on
    the CPU. ``draw(n, gen)`` takes n images from EVERY pool, uniformly with replacement within each
    pool, so every earlier task weighs the same in a batch whatever its pool size.
    """

    def __init__(self) -> None:
        self.names: list[str] = []
        self._images: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self._images)

    def add(self, name: str, images: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray) -> None:
        """Add the pool of one earlier task (``name`` is for messages and ``sizes``)."""
        images = torch.as_tensor(images).detach().cpu()
        labels = torch.as_tensor(labels).detach().cpu().long()
        if images.dtype == torch.uint8:
            ok = images.ndim == 4 and images.shape[-1] == 3
        else:
            ok = images.is_floating_point() and images.ndim == 4 and images.shape[1] == 3
        if not ok:
            raise ValueError(f"replay pool '{name}': images must be uint8 [M, R, R, 3] or float "
                             f"[M, 3, R, R], got {images.dtype} of shape {tuple(images.shape)}")
        if labels.shape != (len(images),) or len(images) == 0:
            raise ValueError(f"replay pool '{name}': need one label per image and at least one image, "
                             f"got {len(images)} images and labels of shape {tuple(labels.shape)}")
        self.names.append(name)
        self._images.append(images)
        self._labels.append(labels)

    def clear(self) -> None:
        """Drop every pool (MeRGAN-style strategies regenerate all of them after each task)."""
        self.names, self._images, self._labels = [], [], []

    def sizes(self) -> dict[str, int]:
        return {n: len(x) for n, x in zip(self.names, self._images)}

    def draw(self, n_per_task: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(float images [K * n, 3, R, R] in [-1, 1], labels [K * n]) with exactly ``n_per_task``
        from each of the K pools, pool by pool in the order added; None when the pool is empty."""
        if not self._images:
            return None
        xs, ys = [], []
        for images, labels in zip(self._images, self._labels):
            idx = torch.randint(len(images), (n_per_task,), generator=gen)  # with replacement
            x = images[idx]
            xs.append(to_input(x) if x.dtype == torch.uint8 else x.float())  # [n, 3, R, R]
            ys.append(labels[idx])  # [n]
        return torch.cat(xs), torch.cat(ys)
