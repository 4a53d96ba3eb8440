"""Lifelong-classification metrics, as pure functions.

Notation: T tasks; ``acc[i][j]`` is the accuracy on task j's test set after training task i, for
j <= i (the accuracy matrix is lower triangular and stored as ragged rows, row i of length i + 1).
Every prediction is the argmax over ALL the head's outputs (class-incremental: the task is not
given at test time).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .classifier import to_input

EVAL_BATCH = 500  # images per forward pass when evaluating; does not change any score


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, batch: int = EVAL_BATCH) -> np.ndarray:
    """Predicted global labels int64 [N] of uint8 images [N, R, R, 3], in eval mode.

    The model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(images), batch):
        x = to_input(images[start:start + batch]).to(device)  # [B, 3, R, R]
        out.append(model(x).argmax(dim=1).cpu())  # [B]
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros(0, np.int64)


def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray, batch: int = EVAL_BATCH) -> float:
    """Fraction of images whose predicted label equals ``labels`` (int64 [N]): mean(argmax f(x) == y)."""
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(f"accuracy needs as many labels as images, and at least one: "
                         f"{len(images)} images, {len(labels)} labels")
    return float((predict(model, images, batch) == np.asarray(labels)).mean())


def accuracy_row(model: nn.Module, test_sets: Sequence[tuple[np.ndarray, np.ndarray]],
                 batch: int = EVAL_BATCH) -> list[float]:
    """Row i of the accuracy matrix: [acc on task j's test set for j in 0..i], given the test
    sets (uint8 images, global labels) of the tasks seen so far, in order."""
    return [accuracy(model, x, y, batch) for x, y in test_sets]


def seen_class_accuracy(model: nn.Module, test_sets: Sequence[tuple[np.ndarray, np.ndarray]],
                        batch: int = EVAL_BATCH) -> float:
    """Accuracy on the union of the seen tasks' test sets: sum_j correct_j / sum_j n_j.

    Unlike :func:`average_accuracy` this weighs each task by its number of test images.
    """
    correct = sum(float((predict(model, x, batch) == y).sum()) for x, y in test_sets)
    return correct / sum(len(y) for _, y in test_sets)


def pooled_accuracy(row: Sequence[float], sizes: Sequence[int]) -> float:
    """The seen-class accuracy from a row of per-task accuracies and the test-set sizes n_j:
    sum_j acc_j * n_j / sum_j n_j (equal to :func:`seen_class_accuracy` without predicting again)."""
    if len(row) != len(sizes) or sum(sizes) == 0:
        raise ValueError(f"pooled accuracy needs one size per accuracy: {len(row)} accuracies, {len(sizes)} sizes")
    return float(sum(a * n for a, n in zip(row, sizes)) / sum(sizes))


def average_accuracy(row: Sequence[float]) -> float:
    """A_i = (1 / (i + 1)) * sum_{j <= i} acc[i][j]: the mean over the tasks seen so far."""
    if len(row) == 0:
        raise ValueError("average accuracy of an empty row")
    return float(np.mean(row))


def average_forgetting(matrix: Sequence[Sequence[float]]) -> float:
    """F = (1 / (T - 1)) * sum_{j < T-1} ( max_{j <= i < T-1} acc[i][j] - acc[T-1][j] ).

    How much of its best accuracy each earlier task lost by the end (Chaudhry et al., 2018).
    NaN for a single task, where nothing can be forgotten.
    """
    t = len(matrix)
    if any(len(row) != i + 1 for i, row in enumerate(matrix)):
        raise ValueError("the accuracy matrix must have rows of length 1, 2, ..., T")
    if t < 2:
        return math.nan
    last = matrix[-1]
    drops = [max(matrix[i][j] for i in range(j, t - 1)) - last[j] for j in range(t - 1)]
    return float(np.mean(drops))
