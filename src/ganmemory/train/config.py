"""Training configuration (docs/method.md, section 2): one typed dataclass, defaults with reasons."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from ..configs import check_seed, check_types, config_from_dict, option_name
from ..errors import GanMemoryError
from ..nets.config import PAPER_LAYOUT, TaskLayout
from ..seeds import RULES
from .precision import PRECISIONS

MAX_BATCH = 65_536  # far beyond any memory here; a larger batch is a typo
FLAGS = {"batch_size": "--batch", "lr_g": "--lr", "lr_d": "--lr", "r1_gamma": "--r1"}  # fields the CLI names otherwise


# options newer than the first stored tasks and checkpoints, with the values those ran with
ADDED_LATER = {"ema_rampup": 0.0, "layout": PAPER_LAYOUT.to_dict(), "seeds": "legacy", "precision": "fp32",
               "lr_decay": 0.0, "mode_seeking": 0.0}


def with_added_options(stored: dict) -> dict:
    return {**ADDED_LATER, **stored} if isinstance(stored, dict) else stored


def _shown(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def flag(field: str) -> str:
    """The command-line option that sets a TrainConfig field."""
    return FLAGS.get(field, option_name(field))


@dataclass(frozen=True)
class TrainConfig:
    iters: int = 10_000  # generator steps (one D step each)
    batch_size: int = 16  # GP-GAN's batch
    # Adam learning rates. GP-GAN's 1e-4 is for 60 k iterations at 256 px on a GPU; at the budgets of
    # a CPU it barely moves a task. On mnist over the shipped source, 600 iterations at 5e-4 (with the
    # EMA ramp-up below) scored FD-EL0 178.6 against 257.9 for GP-GAN's settings (BENCHMARKS.md,
    # "The adaptation recipe"); 1e-3 scored 180.0
    lr_g: float = 5e-4
    lr_d: float = 5e-4
    # > 0: over the last lr_decay * iters steps both learning rates fall linearly towards 0
    # (``lr_scale``); 0 keeps them constant, as GP-GAN
    lr_decay: float = 0.0
    beta1: float = 0.0  # Adam betas (0, 0.99): no momentum, as GP-GAN
    beta2: float = 0.99
    eps: float = 1e-8
    # weight of mean ||grad_x D(x)||^2 on reals, no 1/2 factor. GP-GAN uses 10; at 8,282 mnist
    # iterations 1 (with the short EMA below) scored 12 % lower FD-EL0 on the mean of two seeds
    # (BENCHMARKS.md, "R1 1 with a short EMA"). The tuned preset gives a class-conditional task 10
    # instead (``CONDITIONAL``)
    r1_gamma: float = 1.0
    # R1 on every Nth D step, weighted N x (lazy regularisation, StyleGAN2's); 1 = GP-GAN. Every 4th
    # costs 0.8x the step, and at equal learning time on mnist scored 9 % lower FD-EL0 over two
    # seeds, and on the 10-class task (R1 10) FD-EL0 43.4 against 49.1 with CAS 94.5 % against
    # 93.9 %, means of two seeds (BENCHMARKS.md, "Batch size and R1 interval", "R1 every 4th step
    # as the default")
    r1_every: int = 4
    ema_beta: float = 0.999  # generator EMA (half-life about 693 steps); samples use the EMA
    # > 0: the EMA's half-life at step t is min(half-life of ema_beta, ema_rampup * t) steps, so a
    # short run samples what it learned; 0 (GP-GAN) keeps 61 % of the source after 500 steps.
    # 0.01 (83 steps at 8,282): a task still moving gains from a short average, and 0.2 scored
    # worse than 0.05 (BENCHMARKS.md, "Levers for the 15-minute target")
    ema_rampup: float = 0.01
    # > 0: weight of MSGAN's mode-seeking term in the generator's loss (``losses.mode_seeking_penalty``),
    # the G step's batch then pairing rows i and i + N/2 under one label; 0 leaves the term out. The
    # tuned preset gives a class-conditional task 0.1 (``CONDITIONAL``)
    mode_seeking: float = 0.0
    seed: int = 0  # seeds the batch order and every random draw, step by step
    seeds: str = "sha256"  # how each draw's seed derives from ``seed`` (ganmemory.seeds)
    precision: str = "auto"  # bf16 where native and, on a CPU, measured no slower; else fp32 (train/precision.py)
    flip: bool = True  # random horizontal flips of real images
    conditional: bool = False  # feed the data's class labels to G and D
    log_every: int = 100  # JSON-lines log record every N steps
    sample_every: int = 1000  # sample grid PNG every N steps (0: never)
    ckpt_every: int = 1000  # resumable checkpoint every N steps (0: only at the end)
    layout: TaskLayout = PAPER_LAYOUT  # GAN memory: which parameters a task owns (nets.TaskLayout)

    def __post_init__(self) -> None:
        check_types(self, FLAGS)
        if isinstance(self.layout, dict):  # as stored in a file
            object.__setattr__(self, "layout", TaskLayout.from_dict(self.layout))
        if not isinstance(self.layout, TaskLayout):
            raise GanMemoryError(f"the task layout must be a TaskLayout, got {type(self.layout).__name__}")
        for name, low in (("sample_every", 0), ("ckpt_every", 0), ("iters", 1), ("batch_size", 1), ("r1_every", 1),
                          ("log_every", 1)):
            if getattr(self, name) < low:
                raise GanMemoryError(f"option {flag(name)} must be >= {low}, got {getattr(self, name)}")
        for name in ("lr_g", "lr_d", "eps"):
            if not getattr(self, name) > 0:
                raise GanMemoryError(f"option {flag(name)} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.lr_decay <= 1:
            raise GanMemoryError(f"option --lr-decay must be in [0, 1], got {self.lr_decay}")
        if not 0 <= self.ema_rampup <= 1:
            raise GanMemoryError(f"option --ema-rampup must be in [0, 1], got {self.ema_rampup}")
        if self.mode_seeking < 0:
            raise GanMemoryError(f"option --mode-seeking must be >= 0, got {self.mode_seeking}")
        if self.mode_seeking > 0 and self.batch_size < 2:
            raise GanMemoryError(f"option --mode-seeking pairs images within a batch: it needs --batch 2 or more, "
                                 f"got {self.batch_size} (or pass --mode-seeking 0)")
        if self.r1_gamma < 0:
            raise GanMemoryError(f"option --r1 must be >= 0, got {self.r1_gamma}")
        for name in ("ema_beta", "beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise GanMemoryError(f"option {flag(name)} must be in [0, 1), got {getattr(self, name)}")
        if self.batch_size > MAX_BATCH:
            raise GanMemoryError(f"option --batch must be at most {MAX_BATCH:,}, got {self.batch_size:,}")
        check_seed(self.seed)
        if self.precision not in PRECISIONS:
            raise GanMemoryError(f"option --precision must be one of {', '.join(PRECISIONS)}, got '{self.precision}'")
        if self.seeds not in RULES:
            raise GanMemoryError(f"unknown seed rule '{self.seeds}': use {' or '.join(RULES)}")

    def lr_scale(self, iteration: int) -> float:
        """The factor on both learning rates at step ``iteration`` (0-based) of ``iters``: 1, then
        over the last ``lr_decay * iters`` steps a linear fall that would reach 0 at ``iters``.
        A pure function of the step, so a resumed run takes the same rates; a run extended to
        more ``iters`` decays over its new end."""
        decay_steps = self.lr_decay * self.iters
        if decay_steps <= 0:
            return 1.0
        return min(1.0, max(0.0, (self.iters - iteration) / decay_steps))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def preset(cls, name: str, **options) -> "TrainConfig":
        """The named recipe (``PRESETS``; for ``conditional=True``, with ``CONDITIONAL``'s
        changes), with ``options`` on top."""
        if name not in PRESETS:
            raise GanMemoryError(f"unknown preset '{name}': use {' or '.join(PRESETS)}")
        changes = CONDITIONAL[name] if options.get("conditional") else {}
        return cls(**{**PRESETS[name], **changes, **options})

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """A config as stored; files written before an option existed get the value they ran with."""
        return config_from_dict(cls, with_added_options(d), "training")

    def resumes(self, stored: dict) -> bool:
        """Whether a checkpoint trained with options ``stored`` may continue under these:
        everything but ``iters`` must match."""
        mine = {k: v for k, v in self.to_dict().items() if k != "iters"}
        return mine == {k: v for k, v in with_added_options(stored).items() if k != "iters"}

    def differences(self, stored: dict) -> str:
        """The options, ``iters`` aside, in which these differ from ``stored``, as a user reads
        them: "--r1 10 (now 1), --ema-beta 0.99 (now 0.999)"; fields the stored dict lacks or
        does not know are named as such."""
        stored = with_added_options(stored) if isinstance(stored, dict) else {}
        mine = self.to_dict()
        out = []
        for k in sorted(set(mine) | set(stored)):
            if k == "iters" or mine.get(k) == stored.get(k):
                continue
            if k not in stored:
                out.append(f"{flag(k)} (not stored)")
            elif k not in mine:
                out.append(f"'{k}' (unknown here)")
            else:
                out.append(f"{flag(k)} {_shown(stored[k])} (now {_shown(mine[k])})")
        return ", ".join(dict.fromkeys(out))  # lr_g and lr_d are both --lr: named once

    def continuing(self, stored: dict) -> "TrainConfig":
        """These options under the seed rule of the run whose stored config is ``stored``: the rule
        is not a user's option, and a resumed run keeps the one it began with. So does a run
        resumed under ``precision="auto"``: it keeps the precision it ran in."""
        if not isinstance(stored, dict):
            return self
        stored = with_added_options(stored)
        out = replace(self, seeds=stored["seeds"]) if stored.get("seeds") in RULES else self
        if self.precision == "auto" and stored.get("precision") in PRECISIONS:
            out = replace(out, precision=stored["precision"])
        return out

    def check_divisible(self, world_size: int) -> None:
        if self.batch_size % world_size:
            raise GanMemoryError(f"--batch {self.batch_size} must be divisible by the {world_size} processes")
        if self.mode_seeking > 0 and world_size > 1 and self.batch_size % (2 * world_size):
            # each process takes whole pairs (row i and row i + batch/2) and as many as the others;
            # one process may leave the last row of an odd batch unpaired
            raise GanMemoryError(f"--batch {self.batch_size} must be divisible by 2 x the {world_size} processes "
                                 f"while --mode-seeking is on ({self.mode_seeking:g}; a class-conditional task "
                                 "gets 0.1 from the tuned preset): each process takes whole pairs of images. "
                                 f"Pass --batch {2 * world_size * max(1, round(self.batch_size / (2 * world_size)))} "
                                 "or --mode-seeking 0")



# Named recipes. "tuned" is the dataclass's defaults; "paper" is GP-GAN's, as the GAN Memory
# authors trained every task: Adam 1e-4 throughout, a fixed EMA of 0.999, R1 10 on every step, batch 16, and
# a task that owns the paper's parameters only.
PRESETS: dict[str, dict] = {
    "tuned": {},
    "paper": {"lr_g": 1e-4, "lr_d": 1e-4, "lr_decay": 0.0, "ema_beta": 0.999, "ema_rampup": 0.0, "r1_gamma": 10.0,
              "r1_every": 1, "batch_size": 16, "layout": PAPER_LAYOUT},
}

# What a preset sets otherwise for a class-conditional task. "tuned": R1 10, because on the 10-class
# mnist task (10,762 iterations) a classifier trained only on the task's images scored CAS 93.25 %
# and 94.57 % over two seeds with R1 10 against 90.76 % and 89.43 % with R1 1, and R1 1's lower
# FD-EL0 did not hold on the second seed (BENCHMARKS.md, "Which option costs the CAS").
# And a mode-seeking weight of 0.1: at 11,400 iterations it raised the CAS on two seeds (96.1 % and
# 95.9 % against 94.2 % and 93.1 %) at a cost in FD-EL0 (79.2 and 73.2 against 48.4 and 50.4;
# BENCHMARKS.md, "A mode-seeking term for the 10-class task's CAS"): a conditional task is learned
# so that a classifier can learn from it.
CONDITIONAL: dict[str, dict] = {"tuned": {"r1_gamma": 10.0, "mode_seeking": 0.1}, "paper": {}}
