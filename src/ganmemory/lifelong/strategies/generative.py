"""What the two generative-replay strategies share: the GAN's training options, drawing a
labelled replay pool from a class-conditional generator, and the batch they replay.

Both ``gan-memory`` and ``mergan`` start from the same frozen source and train their GAN for
the same number of iterations per task, so they differ only in what is trained: a task's small
modulation parameters (GAN memory), or every weight of one GAN that replays its own earlier
classes (MeRGAN).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np
import torch

from ...images import to_uint8
from ...source import latents
from ...train import TrainConfig
from ...train.config import PRECISIONS, with_added_options
from ...train.precision import resolve
from ..tasks import ClassTask
from ..config import LifelongConfig
from .base import ReplayPool, Strategy, StrategyOptions


REPLAY_GAN_LR = 5e-4
"""The replay GANs' Adam learning rate. GP-GAN's 1e-4 suits long runs; in a probe here (MNIST 0-1,
conditional GAN memory over the shipped source, 1,000 iterations) 1e-4 still drew grey clipart
blobs while 5e-4 drew recognisable 0s and 1s (docs/replay_lr_probe.png)."""


def replay_gan_config(seed: int, iters: int = 2000, batch_size: int = 16, lr: float = REPLAY_GAN_LR,
                      r1_gamma: float = 10.0) -> TrainConfig:
    """The GAN options of both generative strategies: GP-GAN's (the "paper" preset; the lifelong
    figures in BENCHMARKS.md were measured with it) but for the learning rate
    (``REPLAY_GAN_LR``), class-conditional, no flips (a mirrored digit is another
    symbol), no sample grids or mid-run checkpoints (a lifelong run keeps only the finished GANs)."""
    return TrainConfig.preset("paper", iters=iters, batch_size=batch_size, lr_g=lr, lr_d=lr, r1_gamma=r1_gamma,
                              seed=seed, conditional=True, flip=False, sample_every=0, ckpt_every=0, log_every=100)


@torch.no_grad()
def draw_pool(sample: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], task: ClassTask,
              local_ids: list[int], n: int, z_dim: int, seed: int, chunk: int = 500
              ) -> tuple[np.ndarray, np.ndarray]:
    """About ``n`` generated images of ``task``, its classes in equal shares, as the classifier's
    data: (uint8 [M, R, R, 3], global labels int64 [M]), M = n rounded down to a multiple of
    the class count (at least one per class).

    ``sample(z, y)`` is the generator, ``y`` its class indices; ``local_ids[k]`` is the
    generator's index of ``task.classes[k]``. The latents are those of ``seed``, so a pool is
    a pure function of the generator and the seed.
    """
    per_class = max(1, n // len(task.classes))
    z = latents(per_class * len(task.classes), z_dim, seed)  # [M, z_dim]
    y_local = torch.tensor(local_ids).repeat_interleave(per_class)  # [M]
    y_global = torch.tensor(task.global_ids).repeat_interleave(per_class)  # [M]
    images = [to_uint8(sample(z[i:i + chunk], y_local[i:i + chunk]).clamp(-1, 1))
              for i in range(0, len(z), chunk)]
    return np.concatenate(images), y_global.numpy().astype(np.int64)


def generated_count(n_current: int, share: float) -> int:
    """How many of a batch's ``n_current`` current-task images are generated at ``share``
    (``LifelongConfig.replay_current``): the nearest count, leaving at least one real image
    below share 1; at share 1 all of them (the classifier then never sees a real image)."""
    return n_current if share >= 1 else min(n_current - 1, round(n_current * share))


@dataclass(frozen=True)
class ReplayGanOptions(StrategyOptions):
    """The options both generative strategies share: their GAN's (``replay_gan_config``) and source."""
    gan_iters: int = field(default=2000, metadata={"help": "GAN iterations per task"})
    gan_batch: int = field(default=16, metadata={"help": "GAN batch size"})
    gan_lr: float = field(default=REPLAY_GAN_LR, metadata={"help": "GAN Adam learning rate (G and D)", "metavar": "LR"})
    source: str | None = field(default=None, metadata={
        "help": "source GAN (default: the shipped source)", "metavar": "FILE"})


class GenerativeReplay(Strategy):
    """The batch of both generative strategies: ``cfg.batch_size`` images per earlier task from
    its pool, and the current task's ``cfg.batch_size`` images split between real data and the
    pool the GAN drew after learning it (``cfg.replay_current`` generated). Subclasses fill
    ``self.pool``, the current task's pool with ``pool.set_current`` when ``replay_current > 0``."""

    Options = ReplayGanOptions
    config_fields = ("replay_pool", "replay_current")

    @classmethod
    def init_kwargs(cls, options: ReplayGanOptions, cfg: LifelongConfig, device: str) -> dict[str, Any]:
        gan = replay_gan_config(cfg.seed, iters=options.gan_iters, batch_size=options.gan_batch, lr=options.gan_lr)
        return {"gan": gan, "source": options.source, "device": device}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pool = ReplayPool()

    def _set_gan(self, gan: TrainConfig | None, device: str) -> None:
        """``self.gan``: ``gan`` (default ``replay_gan_config``) under the run's seed rule and with
        its precision resolved for ``device``, as it runs and as ``options()`` stores it."""
        gan = replace(gan or replay_gan_config(self.cfg.seed), seeds=self.cfg.seeds)
        self._gan_auto, self._gan_device = gan.precision == "auto", device
        self.gan = replace(gan, precision=resolve(gan.precision, device, self.log))

    def continuing(self, stored: Any) -> None:
        """A run resumed under precision ``auto`` keeps the GAN precision it ran in (as ``learn
        --resume`` does); runs stored before the option ran fp32."""
        if self._gan_auto and isinstance(stored, dict) and isinstance(stored.get("gan"), dict):
            precision = with_added_options(stored["gan"]).get("precision")
            if precision in PRECISIONS:
                self.gan = replace(self.gan, precision=resolve(precision, self._gan_device, self.log))

    def real_per_batch(self, batch_size: int) -> int:
        return batch_size - generated_count(batch_size, self.cfg.replay_current)

    def replay(self, n_current: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor] | None:
        return self.pool.draw(n_current, gen, n_current=generated_count(n_current, self.cfg.replay_current))

    def options(self) -> dict:
        return {"gan": self.gan.to_dict()}

    def stored_options(self, stored: Any) -> Any:
        if isinstance(stored, dict) and isinstance(stored.get("gan"), dict):
            return {**stored, "gan": with_added_options(stored["gan"])}
        return stored
