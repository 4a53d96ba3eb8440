"""The replay judge: keeps the generated images that most surely show the class they were drawn for.

A class-conditional GAN memory draws some images that look like another class (on Split-MNIST a
classifier trained on real data agrees with the class asked on 75-97 % of a task's replays;
BENCHMARKS.md, "replay probe"), and a classifier trained on them learns those errors. With
``LifelongConfig.replay_keep`` < 1, the ``gan-memory`` strategy draws ``1 / replay_keep`` times
the pool it needs, and a judge ranks the draws of each class by its softmax probability of that
class; the most confident ``replay_pool`` (in equal shares per class) are kept.

The judge is trained while the task is learned, on the task's real training images alone, with
the runner's own loop. (A judge that also saw the earlier tasks' pools did worse on Split-MNIST:
BENCHMARKS.md, "A replay judge".) It is a fresh default CNN whatever
``cfg.classifier`` is, and it is thrown away after ranking; the run keeps only the indices of the
images kept, so a resumed run rebuilds the same pools without the real data.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..seeds import derive_seed
from .classifier import Classifier, to_input
from .config import LifelongConfig
from .strategies.base import Strategy
from .training import train_task

JUDGE_BATCH = 64  # real images per judge step


def n_candidates(n_per_class: int, keep: float) -> int:
    """How many images per class are drawn for the judge to keep ``n_per_class``."""
    return n_per_class if keep >= 1 else int(np.ceil(n_per_class / keep))


@torch.no_grad()
def class_confidence(model: Classifier, images: np.ndarray, labels: np.ndarray, chunk: int = 500) -> np.ndarray:
    """``model``'s softmax probability of each image's own label: float [N].

    Args:
        images: uint8 [N, R, R, 3]; labels: int64 [N], the model's output indices.
    """
    model.eval()
    probs = [model(to_input(images[i:i + chunk])).softmax(1) for i in range(0, len(images), chunk)]
    p = torch.cat(probs) if probs else torch.zeros(0, model.n_classes)  # [N, C]
    return p[torch.arange(len(labels)), torch.from_numpy(np.asarray(labels, dtype=np.int64))].numpy()


def keep_most_confident(confidence: np.ndarray, labels: np.ndarray, n_per_class: int) -> np.ndarray:
    """Indices (int64, ascending) of the ``n_per_class`` most confident images of each label.

    Ties keep the earlier image; a label with fewer images keeps all of them.
    """
    confidence, labels = np.asarray(confidence), np.asarray(labels)
    if confidence.shape != labels.shape:
        raise ValueError(f"one confidence per label needed, got {confidence.shape} and {labels.shape}")
    kept = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        kept.append(idx[np.argsort(-confidence[idx], kind="stable")[:n_per_class]])
    return np.sort(np.concatenate(kept)) if kept else np.zeros(0, dtype=np.int64)


def train_judge(images: np.ndarray, labels: np.ndarray, n_classes: int, cfg: LifelongConfig, index: int
                ) -> Classifier:
    """A fresh default CNN trained for ``cfg.judge_iters`` steps (batch ``JUDGE_BATCH``) on task
    ``index``'s real ``images`` (uint8 [N, R, R, 3]) and global ``labels``.

    The global random state is left as it was, so a run with a judge trains its classifier from
    the same random numbers as without one.
    """
    jcfg = dataclasses.replace(cfg, iters=cfg.judge_iters, batch_size=JUDGE_BATCH, classifier="cnn",
                               seed=derive_seed(cfg.seed, "judge", index, rule=cfg.seeds))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(jcfg.seed)
        judge = Classifier(n_classes, "cnn", cfg.resolution)
        train_task(judge, images, labels, Strategy(jcfg, ".", lambda _: None), jcfg, index, "judge", progress=False)
    return judge.eval()
