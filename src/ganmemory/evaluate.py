"""Scoring generated images against real data: FD-EL0, KID-EL0, or FID (Inception weights given).

Staged as in ``metrics``: real statistics (cached per data spec, resolution, feature network
and n) -> features of generated images -> score. Every score is returned under the name of its
feature network; an EfficientNet-Lite0 score is never called FID.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import torch

from .data.builtin import cache_root
from .errors import GanMemoryError
from .metrics import METRIC_EXTRACTOR, build_extractor, extract_features, frechet_distance, kernel_distance, \
    real_statistics, statistics
from .metrics.features import EXTRACTORS, FeatureNet
from .source import latents

METRICS = {"fd-el0": "FD-EL0", "kid-el0": "KID-EL0", "fid": "FID"}


def metric_name(option: str) -> str:
    try:
        return METRICS[option.lower()]
    except KeyError:
        raise GanMemoryError(f"unknown metric '{option}': use {', '.join(METRICS)}") from None


class Scorer:
    """Scores a generator against one data spec; the feature network and the real statistics
    are loaded once and reused (``learn --eval-every`` calls it many times)."""

    def __init__(self, data_spec: str, resolution: int, metric: str = "fd-el0", n: int = 5000,
                 inception_weights: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None):
        self.metric = metric_name(metric)
        self.extractor_name = METRIC_EXTRACTOR[self.metric]
        self.inception_weights = inception_weights
        self.extractor: FeatureNet = build_extractor(self.extractor_name, inception_weights=inception_weights)
        from .data import load_data
        data = load_data(data_spec, resolution)
        self.n = min(n, len(data))
        if self.n < 2:
            raise GanMemoryError(f"data '{data_spec}' has too few images to score against")
        self.real = real_statistics(data_spec, resolution, self.extractor_name, self.n,
                                    cache_dir or cache_root() / "stats", inception_weights=inception_weights,
                                    data=data)

    @torch.no_grad()
    def score(self, sample: Callable[[torch.Tensor], torch.Tensor], z_dim: int, seed: int = 0,
              batch: int = 100) -> dict[str, Any]:
        """``sample(z) -> images in [-1, 1]``; draws ``n`` images from latents of ``seed``."""
        z = latents(self.n, z_dim, seed)
        feats = extract_features((sample(z[i:i + batch]) for i in range(0, self.n, batch)), self.extractor)
        if self.metric == "KID-EL0":
            k = kernel_distance(feats, self.real.features)
            value, extra = k.mean, {"std": k.std}
        else:
            mu, sigma = statistics(feats)
            value, extra = frechet_distance(mu, sigma, self.real.mu, self.real.sigma), {}
        return {"metric": self.metric, "value": float(value), "n_generated": self.n, "n_real": self.n,
                "feature_network": EXTRACTORS[self.extractor_name].description, **extra}


def real_floor(data_spec: str, resolution: int, n: int, extractor: FeatureNet, seed: int = 7) -> float:
    """The Fréchet distance between two disjoint random samples of ``n`` real images: the best a
    generator can hope to score with ``n`` images."""
    import numpy as np

    from .data import load_data
    data = load_data(data_spec, resolution)
    if 2 * n > len(data):
        raise GanMemoryError(f"data '{data_spec}' has {len(data)} images, fewer than the 2 x {n} the floor needs")
    order = np.random.default_rng(seed).permutation(len(data))
    fa = extract_features(data.images[order[:n]], extractor)
    fb = extract_features(data.images[order[n:2 * n]], extractor)
    return frechet_distance(*statistics(fa), *statistics(fb))


def evaluate_task(bank, task: str, data_spec: str, metric: str = "fd-el0", n: int = 5000, seed: int = 0,
                  inception_weights: str | os.PathLike | None = None, scorer: Scorer | None = None
                  ) -> dict[str, Any]:
    """Score a bank's task against ``data_spec``; pass ``scorer`` to reuse a loaded one."""
    G = bank.task_generator(task)
    n_classes = int(bank.task_meta(task).get("n_classes", 0))
    scorer = scorer or Scorer(data_spec, bank.cfg.resolution, metric, n, inception_weights)

    def sample(z: torch.Tensor) -> torch.Tensor:  # a conditional task: its classes in turn
        return G(z, torch.arange(len(z)) % n_classes if n_classes else None).clamp(-1, 1)

    out = scorer.score(sample, bank.cfg.z_dim, seed)
    return {"task": task, "data": data_spec, **out}
