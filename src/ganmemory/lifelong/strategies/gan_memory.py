"""GAN memory as pseudo-rehearsal (docs/method.md, section 6; the paper's Section 5.2).

Each task is learned into a class-conditional memory bank (``MemoryBank.learn`` with
``conditional=True``): only that task's modulation parameters train, so the generators of
earlier tasks are never touched. While the classifier learns task t, every batch holds the
task's images plus the same number of generated images of each earlier task, labelled by the
class the memory was asked for. The task's own images are part real, part drawn from the memory
that has just learned it (``LifelongConfig.replay_current``; 0 is the paper's all-real batch).
With ``LifelongConfig.replay_keep`` < 1, each pool keeps only the draws a judge trained on the
task's real images is surest of (``lifelong/judge.py``).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ...distributed import DistContext
from ...errors import GanMemoryError
from ...memory import MemoryBank
from ...train import TrainConfig
from ..classifier import Classifier
from ..config import LifelongConfig
from ..judge import class_confidence, keep_most_confident, n_candidates, train_judge
from ..tasks import ClassTask, TaskData
from .generative import GenerativeReplay, ReplayGanOptions, draw_pool


def bank_task_name(index: int, task: ClassTask) -> str:
    """A bank task name for task ``index``, e.g. 't0-mnist-0-1'."""
    return f"t{index}-" + re.sub(r"[^A-Za-z0-9_.+-]+", "-", task.name).strip("-")[:56]


@dataclass(frozen=True)
class GanMemoryOptions(ReplayGanOptions):
    memory: str | None = field(default=None, metadata={
        "help": "bank folder (default OUT/memory; matching tasks are reused)", "metavar": "BANK"})


class GanMemoryReplay(GenerativeReplay):
    """Replay from a class-conditional GAN memory.

    Args:
        cfg, out, log: as :class:`Strategy`.
        gan: the GAN options per task (default ``replay_gan_config(cfg.seed)``: 2,000
            iterations, batch 16, conditional, no flips).
        source: the frozen source (default: the shipped source).
        bank: the memory bank folder (default OUT/memory). A task already in the bank with the
            same data and GAN options is reused, not learned again; a clash is an error.
        progress: show the GAN's progress bar.
        device: torch device the GAN trains on (pools are drawn on the CPU).
    """

    name = "gan-memory"
    Options = GanMemoryOptions
    config_fields = GenerativeReplay.config_fields + ("replay_keep", "judge_iters")

    @classmethod
    def init_kwargs(cls, options: GanMemoryOptions, cfg: LifelongConfig, device: str) -> dict[str, Any]:
        return {**super().init_kwargs(options, cfg, device), "bank": options.memory}

    def __init__(self, cfg: LifelongConfig, out: Path, log: Callable[[str], None],
                 gan: TrainConfig | None = None, source: str | Path | None = None,
                 bank: str | Path | None = None, progress: bool = True, device: str = "cpu") -> None:
        super().__init__(cfg, out, log)
        self._set_gan(gan, device)
        if not self.gan.conditional:
            raise GanMemoryError("the gan-memory strategy needs a class-conditional GAN (conditional=True)")
        root = Path(bank) if bank is not None else self.out / "memory"
        self.bank = MemoryBank(root) if (root / "bank.json").exists() else MemoryBank.create(root, source)
        if self.bank.cfg.resolution != cfg.resolution:
            raise GanMemoryError(f"the memory's source is {self.bank.cfg.resolution} px but the classifier "
                                 f"reads {cfg.resolution} px: pass --resolution {self.bank.cfg.resolution}")
        self.progress, self.device = progress, device
        self.names: list[str] = []
        self.kept: dict[int, np.ndarray] = {}  # task index -> indices of the draws its judge kept

    def _learn(self, index: int, task: ClassTask) -> str:
        name = bank_task_name(index, task)
        if name in self.bank.tasks():
            meta = self.bank.task_meta(name)
            if meta.get("data") != task.train_spec or not self.gan.resumes(meta.get("train", {})) \
                    or meta.get("iterations") != self.gan.iters:
                differ = [f"data '{meta.get('data')}'"] if meta.get("data") != task.train_spec else []
                if meta.get("iterations") != self.gan.iters:
                    differ.append(f"--iters {meta.get('iterations')} (now {self.gan.iters})")
                differ = ", ".join(d for d in differ + [self.gan.differences(meta.get("train", {}))] if d)
                raise GanMemoryError(f"bank '{self.bank.root}' already holds task '{name}' learned with other "
                                     f"data or options{f' ({differ})' if differ else ''}; give another --memory "
                                     "folder")
            self.log(f"gan-memory: reusing task '{name}' of bank '{self.bank.root}'")
            return name
        meta = self.bank.learn(name, task.train_spec, self.gan, progress=self.progress, log=self.log,
                               dist=DistContext(0, 1, self.device))
        self.log(f"gan-memory: learned '{name}' ({meta['iterations']} iterations, "
                 f"{meta['task_parameters']:,} parameters, {meta['seconds'] / 60:.1f} min)")
        return name

    def _draw(self, j: int, task: ClassTask, data: TaskData | None = None, n_classes: int = 0) -> tuple:
        """Task ``j``'s replay pool: a pure function of its frozen generator, the seed and, with
        ``cfg.replay_keep`` < 1, the draws its judge kept (``self.kept[j]``). The judge is trained
        here the first time, from the task's real ``data``; ``n_classes`` is its output count."""
        meta = self.bank.task_meta(self.names[j])
        local = [list(meta["classes"]).index(c) for c in task.classes]
        G, seed = self.bank.task_generator(self.names[j]), self._seed("replay-pool", j)
        if self.cfg.replay_keep >= 1:
            return draw_pool(G, task, local, self.cfg.replay_pool, self.bank.cfg.z_dim, seed=seed)
        per_class = max(1, self.cfg.replay_pool // len(task.classes))
        images, labels = draw_pool(G, task, local, n_candidates(per_class, self.cfg.replay_keep) * len(task.classes),
                                   self.bank.cfg.z_dim, seed=seed)
        if j not in self.kept:
            if data is None:
                raise GanMemoryError(f"task {j + 1} ({task.name}): no kept replays saved and no real images "
                                     "to train its judge on")
            t0 = time.perf_counter()
            judge = train_judge(data.train_images, data.train_labels, n_classes, self.cfg, j)
            self.kept[j] = keep_most_confident(class_confidence(judge, images, labels), labels, per_class)
            self.log(f"gan-memory: the judge of '{self.names[j]}' kept {len(self.kept[j]):,} of {len(images):,} "
                     f"draws ({time.perf_counter() - t0:.0f} s)")
        return images[self.kept[j]], labels[self.kept[j]]

    def before_task(self, model: Classifier, index: int, task: ClassTask, data: TaskData,
                    seen: list[ClassTask]) -> None:
        # the pool of the task just finished; earlier pools stay as drawn (their generators are frozen)
        self.pool.promote_current()
        for j in range(len(self.pool), len(seen)):
            self.pool.add(self.names[j], *self._draw(j, seen[j]))
        self.names.append(self._learn(index, task))
        if self.cfg.replay_keep < 1:  # drawn now even at replay_current 0: the judge needs the real images
            self.pool.set_current(self.names[index], *self._draw(index, task, data, model.n_classes))
        elif self.cfg.replay_current > 0:
            self.pool.set_current(self.names[index], *self._draw(index, task))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"kept.{j}": torch.from_numpy(idx) for j, idx in sorted(self.kept.items())}

    def restore(self, done: list[tuple[ClassTask, TaskData]], state: dict) -> None:
        # the finished tasks are in the bank (each is learned before the classifier trains on it),
        # so this only finds them; their pools are drawn again, the same, by the next before_task
        self.names = [self._learn(index, task) for index, (task, _) in enumerate(done)]
        self.kept = {int(k.split(".")[1]): v.cpu().numpy() for k, v in state.items() if k.startswith("kept.")}

    def summary(self) -> dict:
        infos = {t.name: t for t in self.bank.task_infos()}
        return {"bank": str(self.bank.root), "tasks": self.names,
                "task_parameters": {n: infos[n].meta["task_parameters"] for n in self.names if infos[n].meta},
                "generator_parameters": self.bank.generator_param_count()[1],
                "gan_seconds": {n: infos[n].meta["seconds"] for n in self.names if infos[n].meta},
                "gan": self.gan.to_dict(), "pool": self.pool.sizes()}
