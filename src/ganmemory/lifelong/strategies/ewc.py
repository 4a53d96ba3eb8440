"""Elastic weight consolidation (Kirkpatrick et al., 2017) with Fishers summed over tasks.

After task t the diagonal Fisher F_t of the classifier is estimated on ``cfg.fisher_samples`` of
the task's training images, and accumulated as F = F_0 + ... + F_t; the anchor theta* is the
parameter vector after task t (the latest). While learning later tasks the loss gains

    penalty = (lambda / 2) * sum_k F_k (theta_k - theta*_k)^2,     lambda = cfg.ewc_lambda (1e4).

Fisher variant: the true Fisher by Monte Carlo, not the empirical one. For each image x the label
is SAMPLED from the model's own prediction, y ~ softmax(f(x)) over all outputs, and
F_k = mean_x (d/d theta_k log p(y | x))^2 with per-image gradients (squares of per-image gradients,
not the square of a batch gradient). Only trainable parameters are counted.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from ...errors import GanMemoryError
from ...store import prefixed, unprefixed
from ..classifier import Classifier, to_input
from ..tasks import ClassTask, TaskData
from .base import Strategy

FISHER_CHUNK = 32  # images whose per-image gradients are computed at once


def ewc_penalty(params: Sequence[torch.Tensor], anchors: Sequence[torch.Tensor],
                fisher: Sequence[torch.Tensor], lam: float) -> torch.Tensor:
    """(lam / 2) * sum_k fisher_k * (params_k - anchors_k)^2, summed over every tensor and entry."""
    assert len(params) == len(anchors) == len(fisher), "one anchor and one Fisher per parameter"
    total = params[0].new_zeros(())
    for p, a, f in zip(params, anchors, fisher):
        total = total + (f * (p - a).pow(2)).sum()
    return 0.5 * lam * total


def diagonal_fisher(model: Classifier, images: np.ndarray, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Diagonal Fisher {name: [same shape as the parameter]} of the trainable parameters, from
    uint8 images [N, R, R, 3] with labels sampled from the model (see the module docstring).
    The model is evaluated in eval mode and left unchanged."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    buffers = dict(model.named_buffers())

    def log_likelihood(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, (p, buffers), (x[None],))  # [1, C]
        return -F.cross_entropy(logits, y[None])

    per_image_grad = vmap(grad(log_likelihood), in_dims=(None, 0, 0))
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}
    for start in range(0, len(images), FISHER_CHUNK):
        x = to_input(images[start:start + FISHER_CHUNK]).to(device)  # [B, 3, R, R]
        with torch.no_grad():
            probs = model(x).float().softmax(dim=1).cpu()  # [B, C]
        y = torch.multinomial(probs, 1, generator=gen)[:, 0].to(device)  # [B], sampled labels
        for n, g in per_image_grad(params, x, y).items():  # g: [B, *shape]
            fisher[n] += g.pow(2).sum(dim=0)
    model.train(was_training)
    return {n: f / len(images) for n, f in fisher.items()}


class EWC(Strategy):
    """EWC as a plugin: ``penalty`` before backward, the Fisher after each task."""

    name = "ewc"
    config_fields = ("ewc_lambda", "fisher_samples")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fisher: dict[str, torch.Tensor] | None = None  # summed over finished tasks
        self.anchors: dict[str, torch.Tensor] | None = None  # parameters after the latest task

    def penalty(self, model: Classifier) -> torch.Tensor | None:
        if self.fisher is None:
            return None
        # the model's parameter order, not the Fisher's key order (a restored state's keys come
        # back sorted): the sum then runs in one order, so a resumed run adds up exactly as the whole one
        params = dict(model.named_parameters())
        names = [n for n in params if n in self.fisher]
        return ewc_penalty([params[n] for n in names], [self.anchors[n] for n in names],
                           [self.fisher[n] for n in names], self.cfg.ewc_lambda)

    def after_task(self, model: Classifier, index: int, task: ClassTask, data: TaskData) -> None:
        gen = torch.Generator().manual_seed(self._seed("fisher", index))
        n = min(self.cfg.fisher_samples, len(data.train_images))
        pick = torch.randperm(len(data.train_images), generator=gen)[:n].numpy()
        new = diagonal_fisher(model, data.train_images[np.sort(pick)], gen)
        self.fisher = new if self.fisher is None else {k: self.fisher[k] + new[k] for k in new}
        self.anchors = {n: p.detach().clone() for n, p in model.named_parameters() if n in new}
        self.log(f"ewc: Fisher of task {index + 1} ({task.name}) estimated from {n} training images")

    def state_dict(self) -> dict[str, torch.Tensor]:
        if self.fisher is None:
            return {}
        return {**prefixed("fisher", self.fisher), **prefixed("anchors", self.anchors)}

    def restore(self, done: list[tuple[ClassTask, TaskData]], state: dict[str, torch.Tensor]) -> None:
        fisher, anchors = unprefixed("fisher", state), unprefixed("anchors", state)
        if bool(done) != bool(fisher) or set(fisher) != set(anchors):
            raise GanMemoryError(f"ewc: the saved state does not fit {len(done)} finished task(s): "
                                 f"{len(fisher)} Fisher and {len(anchors)} anchor tensors")
        self.fisher, self.anchors = (fisher, anchors) if fisher else (None, None)

    def summary(self) -> dict:
        return {"fisher": "true Fisher, labels sampled from the model, summed over tasks",
                "lambda": self.cfg.ewc_lambda, "fisher_samples": self.cfg.fisher_samples}
