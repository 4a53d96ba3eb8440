"""Lifelong-classification configuration (docs/method.md, section 6): one typed dataclass, defaults with reasons."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from ..configs import check_seed, check_types, config_from_dict, option_name
from ..errors import GanMemoryError
from ..seeds import RULES

CLASSIFIERS = ("cnn", "el0")
ADDED_LATER = {"replay_keep": 1.0, "judge_iters": 300, "seeds": "legacy"}
"""Options newer than the first saved runs, with the values those runs behaved as (no replay filter)."""


def with_added_options(config: dict) -> dict:
    """A saved run's config dict completed with ``ADDED_LATER``, to compare with today's."""
    return {**ADDED_LATER, **config}


def _flag(field: str) -> str:
    """The command-line option that sets a LifelongConfig field."""
    return "--batch" if field == "batch_size" else option_name(field)


@dataclass(frozen=True)
class LifelongConfig:
    iters: int = 2000  # Adam steps per task, as van de Ven et al.'s Split-MNIST
    batch_size: int = 128  # current-task images per step; replay adds as many per earlier task
    lr: float = 1e-3  # Adam learning rate, as van de Ven et al.
    beta1: float = 0.9  # Adam betas: PyTorch's defaults, as van de Ven et al.
    beta2: float = 0.999
    classifier: str = "cnn"  # "cnn" (small, trained from scratch) or "el0" (EfficientNet-Lite0 + linear head)
    # The fields below belong to some strategies only (each strategy's ``config_fields``); their
    # ``help`` is the text of their command-line options.
    ewc_lambda: float = field(default=1e4, metadata={"help": "EWC penalty weight", "metavar": "W"})  # the GAN Memory authors' value
    fisher_samples: int = field(default=500, metadata={"help": "training images per Fisher estimate"})
    replay_pool: int = field(default=10_000, metadata={"help": "generated images kept per earlier task"})
    # generative strategies: the share of each batch's current-task images drawn from the GAN that has
    # just learned the task instead of the real data. With 0 (the paper's setting) every old class is
    # generated and every new class real, so "generated-looking" alone tells old from new and real old
    # digits drift to new classes. At 1 the classifier sees generated images only. On Split-MNIST
    # (one seed, the same GAN memory; BENCHMARKS.md, "Lifelong classification") the final average
    # accuracy was 84.6 % at 1 against 63.9 % at 0.5, and 67.4 % after 4 tasks at 0.
    replay_current: float = field(default=1.0, metadata={
        "help": "share of the current task's images per batch drawn from its just-learned GAN instead of "
                "real data, in [0, 1]: 0 is the paper's all-real batch, 1 trains the classifier on "
                "generated images only", "metavar": "SHARE"})
    # gan-memory: the share of drawn images kept in each replay pool, the most confident per class of a
    # judge trained on the task's real images (``lifelong/judge.py``); 1 keeps every draw and trains
    # no judge. On Split-MNIST over 3 seeds, keeping 1/2 gave a final average accuracy of 86.2 ± 0.6 %
    # against 83.7 ± 1.1 % (BENCHMARKS.md, "Lifelong classification"); it doubles the draws and trains
    # a judge per task, so it is off by default.
    replay_keep: float = field(default=1.0, metadata={
        "help": "draw 1/SHARE times each replay pool and keep the SHARE that a judge, trained on the "
                "task's real images, most surely sees as the class asked, in (0, 1]; 1 keeps every draw", "metavar": "SHARE"})
    judge_iters: int = field(default=300, metadata={"help": "training steps of each task's judge (batch 64)"})
    seed: int = 0  # seeds the classifier's initialisation, the batch order and every random draw
    seeds: str = "sha256"  # how each draw's seed derives from ``seed`` (ganmemory.seeds)
    resolution: int = 32  # images are resized to R x R; 32 suits the "cnn" classifier

    def __post_init__(self) -> None:
        check_types(self, {"batch_size": "--batch"})
        for name in ("iters", "batch_size", "fisher_samples", "replay_pool", "judge_iters"):
            if getattr(self, name) < 1:
                raise GanMemoryError(f"option {_flag(name)} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise GanMemoryError(f"option --lr must be > 0, got {self.lr}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise GanMemoryError(f"option {name} must be in [0, 1), got {getattr(self, name)}")
        if self.classifier not in CLASSIFIERS:
            raise GanMemoryError(f"option --classifier must be one of {', '.join(CLASSIFIERS)}, "
                                 f"got '{self.classifier}'")
        if not 0 <= self.replay_current <= 1:
            raise GanMemoryError(f"option --replay-current must be in [0, 1], got {self.replay_current}")
        if not 0 < self.replay_keep <= 1:
            raise GanMemoryError(f"option --replay-keep must be in (0, 1], got {self.replay_keep}")
        if not self.ewc_lambda >= 0:
            raise GanMemoryError(f"option --ewc-lambda must be >= 0, got {self.ewc_lambda}")
        check_seed(self.seed)
        if self.seeds not in RULES:
            raise GanMemoryError(f"unknown seed rule '{self.seeds}': use {' or '.join(RULES)}")
        if not 8 <= self.resolution <= 1024:
            raise GanMemoryError(f"option --resolution must be in [8, 1024], got {self.resolution}")
        for name, most in (("batch_size", 65_536), ("replay_pool", 1_000_000), ("fisher_samples", 1_000_000)):
            if getattr(self, name) > most:  # beyond any memory here: a typo
                raise GanMemoryError(f"option {_flag(name)} must be at most {most:,}, "
                                     f"got {getattr(self, name):,}")

    def to_dict(self) -> dict:
        return asdict(self)

    def continuing(self, stored: dict) -> "LifelongConfig":
        """These options under the seed rule of the run whose stored config is ``stored``: the rule
        is not a user's option, and a resumed run keeps the one it began with."""
        rule = with_added_options(stored).get("seeds") if isinstance(stored, dict) else None
        return replace(self, seeds=rule) if rule in RULES else self

    @classmethod
    def from_dict(cls, d: dict) -> "LifelongConfig":
        """A config as stored; runs saved before an option existed get the value they ran with."""
        return config_from_dict(cls, with_added_options(d) if isinstance(d, dict) else d, "lifelong")
