"""Training configuration (METHOD.md section 2): one typed dataclass, defaults with reasons."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..configs import config_from_dict
from ..errors import GanMemoryError


@dataclass(frozen=True)
class TrainConfig:
    iters: int = 10_000  # generator steps (one D step each)
    batch_size: int = 16  # GP-GAN's batch
    lr_g: float = 1e-4  # Adam learning rates, as GP-GAN
    lr_d: float = 1e-4
    beta1: float = 0.0  # Adam betas (0, 0.99): no momentum, as GP-GAN
    beta2: float = 0.99
    eps: float = 1e-8
    r1_gamma: float = 10.0  # weight of mean ||grad_x D(x)||^2 on reals, no 1/2 factor
    r1_every: int = 1  # R1 on every Nth D step, weighted N x (lazy regularisation); 1 = GP-GAN
    ema_beta: float = 0.999  # generator EMA (half-life about 693 steps); samples use the EMA
    seed: int = 0  # seeds the batch order and every random draw, step by step
    flip: bool = True  # random horizontal flips of real images
    conditional: bool = False  # feed the data's class labels to G and D
    log_every: int = 100  # JSON-lines log record every N steps
    sample_every: int = 1000  # sample grid PNG every N steps (0: never)
    ckpt_every: int = 1000  # resumable checkpoint every N steps (0: only at the end)

    def __post_init__(self) -> None:
        for name in ("iters", "batch_size", "r1_every"):
            if getattr(self, name) < 1:
                raise GanMemoryError(f"option --{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("lr_g", "lr_d", "eps"):
            if not getattr(self, name) > 0:
                raise GanMemoryError(f"option {name} must be > 0, got {getattr(self, name)}")
        if self.r1_gamma < 0:
            raise GanMemoryError(f"option --r1 must be >= 0, got {self.r1_gamma}")
        if not 0 <= self.ema_beta < 1:
            raise GanMemoryError(f"option --ema-beta must be in [0, 1), got {self.ema_beta}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return config_from_dict(cls, d, "training")

    def resumes(self, stored: dict) -> bool:
        """Whether a checkpoint trained with options ``stored`` may continue under these:
        everything but ``iters`` must match."""
        mine = {k: v for k, v in self.to_dict().items() if k != "iters"}
        return mine == {k: v for k, v in stored.items() if k != "iters"}

    def check_divisible(self, world_size: int) -> None:
        if self.batch_size % world_size:
            raise GanMemoryError(f"--batch {self.batch_size} must be divisible by the {world_size} processes")

