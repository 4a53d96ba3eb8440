"""Training the lifelong classifier on one task: the runner's loop, and the judge's.

Every batch and every replay draw is a pure function of the run's seed, the task and the step
(``task_seed``, ``ganmemory.seeds``), so a resumed run computes what the whole run would have.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..errors import GanMemoryError
from ..seeds import derive_seed
from ..train.trainer import BatchSchedule, step_generator
from .classifier import Classifier, to_input
from .config import LifelongConfig
from .strategies.base import Strategy

CHECK_EVERY = 50  # steps between loss checks (and progress-bar updates); each check syncs a GPU


def task_seed(cfg: LifelongConfig, index: int) -> int:
    """The seed of task ``index``'s batch order and per-step draws: a pure function of (seed, index)."""
    return derive_seed(cfg.seed, "task", index, rule=cfg.seeds)


def train_task(model: Classifier, images: np.ndarray, labels: np.ndarray, strategy: Strategy,
               cfg: LifelongConfig, index: int, desc: str, progress: bool) -> float:
    """``cfg.iters`` Adam steps on one task; returns the last checked loss.

    A new Adam (lr ``cfg.lr``, betas (beta1, beta2)) is created for every task, as van de Ven et
    al. do: moment estimates from the previous task's loss would push the first steps of the new
    task in stale directions. Each batch is ``strategy.real_per_batch(cfg.batch_size)`` real
    images (all ``cfg.batch_size`` but for the generative strategies; none at ``replay_current``
    1), taken in epochs of seeded permutations of (``images``, ``labels``), plus
    ``strategy.replay(cfg.batch_size, gen)``; the loss is the mean cross-entropy over the whole
    batch (all C outputs) plus ``strategy.penalty(model)``.
    """
    device = next(model.parameters()).device
    x_all = torch.from_numpy(np.ascontiguousarray(images))  # uint8 [N, R, R, 3]
    y_all = torch.from_numpy(np.ascontiguousarray(labels)).long()  # [N]
    if x_all.ndim != 4 or x_all.shape[1:] != (cfg.resolution, cfg.resolution, 3) or len(y_all) != len(x_all):
        raise GanMemoryError(f"task {index + 1}: training data must be uint8 [N, {cfg.resolution}, "
                             f"{cfg.resolution}, 3] with N labels, got images {tuple(x_all.shape)} "
                             f"and labels {tuple(y_all.shape)}")
    seed = task_seed(cfg, index)
    n_real = strategy.real_per_batch(cfg.batch_size)
    if not 0 <= n_real <= cfg.batch_size:
        raise GanMemoryError(f"strategy '{strategy.name}' asked for {n_real} real images per batch of "
                             f"{cfg.batch_size}; it must be 0 to {cfg.batch_size}")
    schedule = BatchSchedule(len(x_all), n_real, seed, cfg.seeds) if n_real else None  # 0: the batch is all replay
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    model.train()
    last = math.nan
    bar = tqdm(range(cfg.iters), desc=desc, unit="it", disable=not progress, leave=False)
    for it in bar:
        xs: list[torch.Tensor] = []
        ys: list[torch.Tensor] = []
        if schedule is not None:
            idx = schedule.indices(it)
            xs.append(to_input(x_all[idx]).to(device))  # [B, 3, R, R]
            ys.append(y_all[idx].to(device))  # [B]
        extra = strategy.replay(cfg.batch_size, step_generator(seed, it, cfg.seeds))
        if extra is not None:  # M = batch_size per earlier task (+ generated current-task images)
            xs.append(extra[0].to(device, torch.float32))  # [M, 3, R, R]
            ys.append(extra[1].to(device, torch.long))  # [M]
        if not xs:
            raise GanMemoryError(f"task {index + 1}: strategy '{strategy.name}' asked for no real images "
                                 "and replayed none, so the batch is empty")
        x, y = torch.cat(xs), torch.cat(ys)  # [B + M, 3, R, R], [B + M]
        logits = model(x)  # [B + M, C]
        loss = F.cross_entropy(logits, y)
        penalty = strategy.penalty(model)
        if penalty is not None:
            loss = loss + penalty
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if it % CHECK_EVERY == 0 or it == cfg.iters - 1:
            last = loss.item()
            if not math.isfinite(last):
                raise GanMemoryError(f"task {index + 1}: the loss is {last} at step {it}; "
                                     "try a smaller --lr (or --ewc-lambda for ewc)")
            bar.set_postfix(loss=f"{last:.3f}", batch=len(y))
    bar.close()
    return last
