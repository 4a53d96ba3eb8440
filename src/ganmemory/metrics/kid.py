"""Kernel Inception Distance (Bińkowski et al., 2018): unbiased MMD^2 with a cubic polynomial kernel.

For features of dimension d the kernel is k(x, y) = (x . y / d + 1)^3. On subsets X, Y of m rows
each, the unbiased estimate is::

    MMD^2 = sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (m (m - 1))
            - 2 sum_{i, j} k(x_i, y_j) / m^2

It is averaged over ``n_subsets`` subsets drawn without replacement (with a seeded generator), and
its standard deviation over subsets is reported with it. Unbiased means it can be slightly
negative when both sets come from one distribution. Like FD, its value depends on the feature
network; name it for it ("KID-EL0").
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from ..errors import GanMemoryError


class KIDResult(NamedTuple):
    mean: float  # mean of the unbiased MMD^2 over subsets
    std: float  # standard deviation over subsets (divisor n_subsets)


def _as_float64(features: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    return np.asarray(features, dtype=np.float64)


def polynomial_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between x [m, d] and y [m, d] with k(a, b) = (a . b / d + 1)^3."""
    m, d = x.shape
    k_xx = (x @ x.T / d + 1.0) ** 3  # [m, m]
    k_yy = (y @ y.T / d + 1.0) ** 3  # [m, m]
    k_xy = (x @ y.T / d + 1.0) ** 3  # [m, m]
    same = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(same - 2.0 * k_xy.mean())


def kernel_distance(features1: np.ndarray | torch.Tensor, features2: np.ndarray | torch.Tensor,
                    n_subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> KIDResult:
    """Unbiased KID between features1 [N1, D] and features2 [N2, D].

    ``subset_size`` is capped at min(N1, N2), so small sets still get a (noisier) estimate.
    """
    f1, f2 = _as_float64(features1), _as_float64(features2)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise GanMemoryError(f"KID needs two feature sets [N, D] of one D, got {f1.shape} and {f2.shape}")
    if n_subsets < 1:
        raise GanMemoryError(f"KID option n_subsets must be at least 1, got {n_subsets}")
    m = min(subset_size, f1.shape[0], f2.shape[0])
    if m < 2:
        raise GanMemoryError(f"KID option subset_size must be at least 2 and both sets need 2 "
                             f"images or more; got subset_size {subset_size} for sets of "
                             f"{f1.shape[0]} and {f2.shape[0]}")
    rng = np.random.default_rng(seed)
    values = np.empty(n_subsets)
    for i in range(n_subsets):
        x = f1[rng.choice(f1.shape[0], m, replace=False)]  # [m, D]
        y = f2[rng.choice(f2.shape[0], m, replace=False)]  # [m, D]
        values[i] = polynomial_mmd2(x, y)
    return KIDResult(float(values.mean()), float(values.std()))
