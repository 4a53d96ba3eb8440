"""Joint training: each task trains on the real data of every task so far (the upper bound)."""

from __future__ import annotations

import numpy as np

from ..tasks import ClassTask, TaskData
from .base import Strategy


class Joint(Strategy):
    """``train_arrays`` returns the concatenated train sets of tasks 0..index; batches are drawn
    uniformly from that union, so each task weighs by its number of images. Keeps every earlier
    train set in memory (uint8)."""

    name = "joint"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._images: list[np.ndarray] = []  # uint8 [N_j, R, R, 3] per finished task
        self._labels: list[np.ndarray] = []  # int64 [N_j]

    def train_arrays(self, index: int, task: ClassTask, data: TaskData) -> tuple[np.ndarray, np.ndarray]:
        assert len(self._images) == index, "joint training needs every earlier task's after_task"
        return (np.concatenate(self._images + [data.train_images]),
                np.concatenate(self._labels + [data.train_labels]))

    def after_task(self, model, index: int, task: ClassTask, data: TaskData) -> None:
        self._images.append(data.train_images)
        self._labels.append(data.train_labels)

    def restore(self, done: list[tuple[ClassTask, TaskData]], state: dict) -> None:
        self._images = [data.train_images for _, data in done]
        self._labels = [data.train_labels for _, data in done]

    def summary(self) -> dict:
        return {"real_images_kept": int(sum(len(x) for x in self._images))}
