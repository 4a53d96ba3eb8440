"""The strategy interface and the replay pool that replaying strategies fill.

A strategy is a small plugin around the runner's loop (``runner.py``); the runner calls only
the methods of :class:`Strategy`, in this order for task ``index``::

    before_task -> train_arrays -> real_per_batch -> (replay, penalty) at every step -> evaluation
    -> after_task -> state_dict (saved with the classifier)

A resumed run (``run_lifelong(..., resume=True)``) calls ``restore`` once with the finished
tasks instead of replaying them, then goes on as above from the next task.

A strategy declares its options once, and the command line builds its flags from them:
``config_fields`` names the ``LifelongConfig`` fields that only it reads (their help is in the
field's metadata), and ``Options`` is a dataclass of its own constructor options, each field with
``metadata={"help": ...}``; ``init_kwargs`` turns an ``Options`` into constructor arguments.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import torch

from ...seeds import derive_seed
from ..classifier import Classifier, to_input
from ..config import LifelongConfig
from ..tasks import ClassTask, TaskData


@dataclasses.dataclass(frozen=True)
class StrategyOptions:
    """A strategy's own options (none here). Subclass it with fields that carry
    ``metadata={"help": ...}`` (and ``"metavar"``); ``lifelong --field-name`` sets each, an int
    field must be >= 1 and a float finite."""


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
    Options: ClassVar[type[StrategyOptions]] = StrategyOptions
    config_fields: ClassVar[tuple[str, ...]] = ()  # the LifelongConfig fields only strategies like this read

    @classmethod
    def init_kwargs(cls, options: StrategyOptions, cfg: LifelongConfig, device: str) -> dict[str, Any]:
        """The constructor's keyword arguments for ``options`` (default: its fields as they are)."""
        return dataclasses.asdict(options)

    def __init__(self, cfg: LifelongConfig, out: Path, log: Callable[[str], None]) -> None:
        self.cfg, self.out, self.log = cfg, Path(out), log

    def before_task(self, model: Classifier, index: int, task: ClassTask, data: TaskData,
                    seen: list[ClassTask]) -> None:
        """Called before training task ``index`` (``seen`` = the tasks before it, in order)."""

    def train_arrays(self, index: int, task: ClassTask, data: TaskData) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 images [N, R, R, 3], global labels int64 [N]) of REAL data to train on for this
        task; the default is the task's train set."""
        return data.train_images, data.train_labels

    def real_per_batch(self, batch_size: int) -> int:
        """How many of each batch's ``batch_size`` current-task images are real; ``replay`` supplies
        the rest. The default is all of them."""
        return batch_size

    def replay(self, n_current: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Extra (float images [M, 3, R, R] in [-1, 1], global labels int64 [M]) appended to each
        batch's real images, drawn with ``gen`` (a CPU generator, a pure function of the seed, task
        and step); ``n_current`` is the batch's count of current-task images (``cfg.batch_size``,
        real plus generated). The default is None (no replay)."""
        return None

    def _seed(self, name: str, *keys: int, seed: int | None = None) -> int:
        """The seed of this run's draw ``name`` at ``keys`` (``ganmemory.seeds``); ``seed``
        replaces the run's seed where a draw belongs to another seeded config (mergan's GAN)."""
        return derive_seed(self.cfg.seed if seed is None else seed, name, *keys, rule=self.cfg.seeds)

    def penalty(self, model: Classifier) -> torch.Tensor | None:
        """A scalar added to the loss before backward (EWC); the default is None."""
        return None

    def after_task(self, model: Classifier, index: int, task: ClassTask, data: TaskData) -> None:
        """Called after training and evaluating task ``index``; must not change ``model``."""

    def summary(self) -> dict:
        """JSON-able facts about the strategy for results.json (e.g. memory size); default {}."""
        return {}

    def options(self) -> dict:
        """JSON-able options beyond ``LifelongConfig`` that a resumed run must share (e.g. the GAN's);
        default {}."""
        return {}

    def stored_options(self, stored: Any) -> Any:
        """``options()`` as an earlier run stored them, completed with what newer versions
        add, to compare with this run's; default: as stored."""
        return stored

    def continuing(self, stored: Any) -> None:
        """On resume, before the options are compared: take what a resumed run keeps from its
        start, ``stored`` being ``options()`` as that run stored them; default: nothing."""

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors a resumed run needs, saved with the classifier after every task (e.g. EWC's
        Fisher); default {}."""
        return {}

    def restore(self, done: list[tuple[ClassTask, TaskData]], state: dict[str, torch.Tensor]) -> None:
        """Bring a fresh strategy to where it stood after ``after_task`` of the last of ``done``
        (the finished tasks in order, with their data), from ``state`` (its ``state_dict`` then).
        The default has nothing to restore."""


def _pool_tensors(name: str, images: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """One pool's (images, int64 labels) as CPU tensors, checked (a ValueError naming the pool)."""
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
    return images, labels


class ReplayPool:
    """Per earlier task, a pool of images and their global labels to replay.

    Pools hold uint8 images [M, R, R, 3] (4x smaller; e.g. generated images passed through
    ``ganmemory.images.to_uint8`` and permuted to NHWC) or float images [M, 3, R, R] in [-1, 1], on
    the CPU. ``draw(n, gen)`` takes n images from EVERY pool, uniformly with replacement within each
    pool, so every earlier task weighs the same in a batch whatever its pool size.

    A generative strategy may also set a pool of the CURRENT task (``set_current``); it is not an
    earlier task, and ``draw(n, gen, n_current=k)`` appends k images of it after the earlier ones.
    """

    def __init__(self) -> None:
        self.names: list[str] = []
        self._images: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []
        self.current: tuple[str, torch.Tensor, torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self._images)

    def add(self, name: str, images: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray) -> None:
        """Add the pool of one earlier task (``name`` is for messages and ``sizes``)."""
        images, labels = _pool_tensors(name, images, labels)
        self.names.append(name)
        self._images.append(images)
        self._labels.append(labels)

    def set_current(self, name: str, images: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray) -> None:
        """Set the current task's pool (same formats as ``add``); it replaces the previous one."""
        self.current = (name, *_pool_tensors(name, images, labels))

    def promote_current(self) -> None:
        """Move the current task's pool to the earlier tasks' (when the next task begins)."""
        if self.current is not None:
            self.add(*self.current)
            self.current = None

    def clear(self) -> None:
        """Drop every pool (MeRGAN-style strategies regenerate all of them after each task)."""
        self.names, self._images, self._labels = [], [], []
        self.current = None

    def sizes(self) -> dict[str, int]:
        return {n: len(x) for n, x in zip(self.names, self._images)}

    def draw(self, n_per_task: int, gen: torch.Generator, n_current: int = 0
             ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(float images [K * n + k, 3, R, R] in [-1, 1], labels [K * n + k]) with exactly ``n_per_task``
        from each of the K earlier pools, pool by pool in the order added, then ``n_current`` = k
        from the current task's pool; None when that is nothing."""
        if n_current and self.current is None:
            raise ValueError(f"replay pool: {n_current} current-task images asked but no current pool is set")
        pools = [(x, y, n_per_task) for x, y in zip(self._images, self._labels)]
        if n_current:
            pools.append((self.current[1], self.current[2], n_current))
        if not pools:
            return None
        xs, ys = [], []
        for images, labels, n in pools:
            idx = torch.randint(len(images), (n,), generator=gen)  # with replacement
            x = images[idx]
            xs.append(to_input(x) if x.dtype == torch.uint8 else x.float())  # [n, 3, R, R]
            ys.append(labels[idx])  # [n]
        return torch.cat(xs), torch.cat(ys)
