"""The training loop around :class:`GANTrainer`: progress bar, logs, sample grids, checkpoints.

It only reads the trainer's state; logging, sampling and checkpointing never change it.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm

from ..data import ImageSet
from ..distributed import any_rank
from ..errors import TrainingDiverged
from ..images import save_grid
from ..store import load_artifact, save_artifact
from .trainer import BatchSchedule, GANTrainer

CKPT_FORMAT = "ganmemory-train-checkpoint"


def save_checkpoint(trainer: GANTrainer, path: Path, extra_meta: dict[str, Any]) -> None:
    tensors, meta = trainer.state_tensors()
    meta.update(extra_meta)
    meta.update({"format": CKPT_FORMAT, "format_version": 1})
    save_artifact(path, tensors, meta)


def load_checkpoint(trainer: GANTrainer, path: Path) -> dict[str, Any]:
    tensors, meta = load_artifact(path, CKPT_FORMAT)
    trainer.load_state_tensors(tensors, meta)
    return meta


def fixed_latents(n: int, z_dim: int, seed: int = 12345) -> torch.Tensor:
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))


def fit(trainer: GANTrainer, data: ImageSet, out_dir: str | os.PathLike, *,
        ckpt_meta: dict[str, Any], progress: bool = True, desc: str = "training",
        on_step: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, Any]:
    """Train until ``trainer.cfg.iters``; writes log.jsonl, samples/ and checkpoint.safetensors.

    Returns a summary dict (iterations, seconds, last stats). Resuming is the caller's job:
    load a checkpoint into the trainer first and ``fit`` continues from its iteration.

    A step whose losses are not finite (a diverged GAN: NaN spreads to every weight and never
    leaves) raises :class:`TrainingDiverged` on every rank at once, before that step is logged or
    checkpointed.
    """
    cfg = trainer.cfg
    out = Path(out_dir)
    is_writer = trainer.dist.is_writer
    if is_writer:
        (out / "samples").mkdir(parents=True, exist_ok=True)
    images = torch.from_numpy(data.images)  # [N, R, R, 3] uint8
    labels = torch.from_numpy(data.labels)
    sched = BatchSchedule(len(images), cfg.batch_size, cfg.seed, cfg.seeds)
    z_fixed = fixed_latents(64, trainer.G.cfg.z_dim).to(trainer.device)
    n_labels = getattr(trainer.G, "n_classes", 0) or trainer.G.cfg.nlabels  # a conditional task: its classes
    y_fixed = (torch.arange(64) % n_labels).to(trainer.device)
    start_it, t0, stats = trainer.iteration, time.perf_counter(), {}
    log_path = out / "log.jsonl"
    bar = tqdm(total=cfg.iters, initial=start_it, desc=desc, unit="it", disable=not (progress and is_writer),
               dynamic_ncols=True)
    while trainer.iteration < cfg.iters:
        idx = sched.indices(trainer.iteration)
        stats = trainer.train_step(images[idx], labels[idx])
        it = trainer.iteration
        if any_rank(not all(math.isfinite(v) for v in stats.values()), trainer.dist):
            bar.close()
            raise TrainingDiverged(it, stats)
        bar.update(1)
        if on_step is not None:
            on_step(it, stats)
        if not is_writer:
            continue
        if it % cfg.log_every == 0 or it == cfg.iters:
            bar.set_postfix(d=f"{stats['d_loss_real'] + stats['d_loss_fake']:.3f}", g=f"{stats['g_loss']:.3f}")
            # lazy R1 runs on every r1_every-th step only: log the latest value it computed
            logged = {**stats, "r1": trainer.r1_last}
            record = {"iteration": it, "seconds": round(time.perf_counter() - t0, 3), **{k: round(v, 5) for k, v in logged.items()}}
            with open(log_path, "a") as fh:
                fh.write(json.dumps(record) + "\n")
        if cfg.sample_every and (it % cfg.sample_every == 0 or it == cfg.iters):
            with torch.no_grad():
                trainer.G_ema.eval()
                x = trainer.G_ema(z_fixed, y_fixed)
            save_grid(x, out / "samples" / f"iter_{it:07d}.png", nrow=8)
        if (cfg.ckpt_every and it % cfg.ckpt_every == 0) or it == cfg.iters:
            save_checkpoint(trainer, out / "checkpoint.safetensors", ckpt_meta)
    bar.close()
    return {"iterations": trainer.iteration, "seconds": time.perf_counter() - t0,
            "steps_this_run": trainer.iteration - start_it, "last": stats}
