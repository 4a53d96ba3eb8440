"""Scoring generated images against real data: FD-EL0, KID-EL0, or FID (Inception weights given),
and, for class-conditional tasks, the Classification Accuracy Score (CAS).

Staged as in ``metrics``: real statistics (cached per data spec, resolution, feature network
and n) -> features of generated images -> score. Every score is returned under the name of its
feature network; an EfficientNet-Lite0 score is never called FID.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .configs import check_seed, check_types
from .data import ImageSet
from .data.builtin import cache_root
from .errors import GanMemoryError
from .metrics import METRICS, Metric, build_extractor, extract_features, frechet_distance, kernel_distance, \
    real_statistics, statistics
from .metrics.features import EXTRACTORS, FeatureNet
from .source import latents

EVAL_N = 5000  # generated and real images per score unless told otherwise


def find_metric(option: str) -> Metric:
    """The metric a command-line name (``METRICS``, any case) stands for."""
    try:
        return METRICS[option.lower()]
    except KeyError:
        raise GanMemoryError(f"unknown metric '{option}': use {', '.join(METRICS)}") from None


class Scorer:
    """Scores a generator against one data spec; the feature network and the real statistics
    are loaded once and reused (``learn --eval-every`` calls it many times)."""

    def __init__(self, data_spec: str, resolution: int, metric: str = "fd-el0", n: int = EVAL_N,
                 inception_weights: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None):
        self.entry = find_metric(metric)
        self.metric, self.extractor_name = self.entry.name, self.entry.extractor
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
        if self.entry.score == "kernel":
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


def evaluate_task(bank, task: str, data_spec: str, metric: str = "fd-el0", n: int = EVAL_N, seed: int = 0,
                  inception_weights: str | os.PathLike | None = None, scorer: Scorer | None = None
                  ) -> dict[str, Any]:
    """Score a bank's task against ``data_spec``; pass ``scorer`` to reuse a loaded one."""
    G = bank.task_generator(task)
    n_classes = int(bank.task_meta(task).get("n_classes", 0))
    scorer = scorer or Scorer(data_spec, bank.cfg.resolution, metric, n, inception_weights)
    out = scorer.score(task_sampler(G, n_classes), bank.cfg.z_dim, seed)
    return {"task": task, "data": data_spec, **out}


def task_sampler(G: torch.nn.Module, n_classes: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """``sample(z)``, a task generator's images clamped to [-1, 1], as ``Scorer.score`` takes
    it; a conditional task (``n_classes`` > 0) draws its classes in turn."""
    def sample(z: torch.Tensor) -> torch.Tensor:
        return G(z, torch.arange(len(z)) % n_classes if n_classes else None).clamp(-1, 1)
    return sample


@dataclass(frozen=True)
class CASProtocol:
    """The fixed protocol of the Classification Accuracy Score (Ravuri & Vinyals, 2019): the
    library's default CNN (``lifelong/classifier.py``) is trained on ``per_class`` images of every
    class, for ``steps`` Adam steps (lr 1e-3, batch ``batch``, seed ``seed``), then tested on a real
    test split. The same protocol on real training images gives the ceiling to compare with."""
    per_class: int = 1000
    steps: int = 2000
    batch: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        check_types(self)
        for name in ("per_class", "steps", "batch"):
            if getattr(self, name) < 1:
                raise GanMemoryError(f"CAS option {name} must be >= 1, got {getattr(self, name)}")
        check_seed(self.seed)


def classifier_accuracy(images: np.ndarray, labels: np.ndarray, test: ImageSet, classes: Sequence[str],
                        protocol: CASProtocol) -> dict[str, Any]:
    """Train the default CNN on uint8 ``images`` [N, R, R, 3] with ``labels`` [N] by ``protocol``
    and test it on ``test`` (whose labels index ``classes``): ``value`` is the accuracy over the
    whole test split and ``per_class`` each class's accuracy on its own test images (the recall),
    which shows where a generator's classes fall short."""
    from .lifelong.classifier import Classifier
    from .lifelong.config import LifelongConfig
    from .lifelong.metrics import predict
    from .lifelong.training import train_task
    from .lifelong.strategies.base import Strategy

    cfg = LifelongConfig(iters=protocol.steps, batch_size=protocol.batch, seed=protocol.seed,
                         resolution=images.shape[1])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(protocol.seed)
        model = Classifier(len(classes), "cnn", cfg.resolution)
        train_task(model, images, labels, Strategy(cfg, ".", lambda _: None), cfg, 0, "CAS", progress=False)
    right = predict(model.eval(), test.images) == np.asarray(test.labels)  # [N_test]
    per_class = {c: round(float(right[test.labels == i].mean()), 4) for i, c in enumerate(classes)
                 if (test.labels == i).any()}
    return {"value": float(right.mean()), "per_class": per_class}


def _test_labels(task_classes: Sequence[str], test: ImageSet, test_spec: str) -> ImageSet:
    """``test`` with its labels renumbered to the order of ``task_classes``."""
    if sorted(test.classes) != sorted(task_classes):
        raise GanMemoryError(f"test data '{test_spec}' has classes {', '.join(test.classes)}, the task "
                             f"{', '.join(task_classes)}: CAS needs the same classes")
    order = np.array([list(task_classes).index(c) for c in test.classes])
    return dataclasses.replace(test, labels=order[test.labels].astype(test.labels.dtype))


def classification_accuracy_score(bank, task: str, test_spec: str, protocol: CASProtocol = CASProtocol()
                                  ) -> dict[str, Any]:
    """CAS of a class-conditional task: the classifier trains on ``protocol.per_class`` images
    drawn from the task for each class (latents of ``protocol.seed``) and is tested on
    ``test_spec``."""
    from .data import load_data
    from .images import to_uint8
    meta = bank.task_meta(task)
    classes = list(meta.get("classes", []))
    if not int(meta.get("n_classes", 0)):
        raise GanMemoryError(f"task '{task}' is not class-conditional; CAS needs a task learned with --conditional")
    test = _test_labels(classes, load_data(test_spec, bank.cfg.resolution), test_spec)
    x = bank.sample(task, protocol.per_class, seed=protocol.seed, classes=classes)  # [C * n, 3, R, R], class-major
    labels = np.repeat(np.arange(len(classes)), protocol.per_class)
    scores = classifier_accuracy(to_uint8(x), labels, test, classes, protocol)
    return {"task": task, "metric": "CAS", **scores, "test": test_spec, "n_test": len(test),
            "protocol": dataclasses.asdict(protocol)}


def real_data_accuracy(train_spec: str, test_spec: str, resolution: int, protocol: CASProtocol = CASProtocol()
                       ) -> dict[str, Any]:
    """The CAS ceiling: the same protocol on ``protocol.per_class`` real training images per class
    (the first of a seeded permutation)."""
    from .data import load_data
    data = load_data(train_spec, resolution)
    test = _test_labels(list(data.classes), load_data(test_spec, resolution), test_spec)
    order = np.random.default_rng(protocol.seed).permutation(len(data))
    keep = np.concatenate([order[data.labels[order] == c][:protocol.per_class] for c in range(len(data.classes))])
    short = [c for c in range(len(data.classes)) if (data.labels == c).sum() < protocol.per_class]
    if short:
        raise GanMemoryError(f"data '{train_spec}' has fewer than {protocol.per_class} images of class "
                             f"'{data.classes[short[0]]}'")
    scores = classifier_accuracy(data.images[keep], data.labels[keep], test, list(data.classes), protocol)
    return {"metric": "real-data accuracy", **scores, "train": train_spec, "test": test_spec,
            "n_test": len(test), "protocol": dataclasses.asdict(protocol)}
