"""MeRGAN-style replay (Wu et al. 2018, "Memory Replay GANs"; docs/method.md, section 6): one
class-conditional GAN learns every task, replaying its own earlier classes.

Before task t, a frozen copy of the GAN (its EMA generator) draws a labelled pool of every
earlier class; the GAN then trains on task t's real images together with that pool ("replay
alignment" is left out: this is MeRGAN's joint-retraining variant). The classifier replays the
same way as with GAN memory, from pools drawn from the GAN as it stands after task t - 1, and
its current-task images are part real, part drawn from the GAN after it learned task t
(``LifelongConfig.replay_current``).

The GAN starts from the same frozen source as GAN memory and uses the same conditioning (a
class bias on the first Linear, one D logit per class), but every weight trains. Its class
rows grow as classes arrive: a new class's bias starts at zero and its D row at the source's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ...data import ImageSet
from ...errors import GanMemoryError, TrainingDiverged
from ...nets import Discriminator, Generator
from ...source import Source
from ...store import prefixed, unprefixed
from ...train import GANTrainer, TrainConfig
from ...train.loop import fit
from ..classifier import Classifier
from ..config import LifelongConfig
from ..tasks import ClassTask, TaskData
from .generative import GenerativeReplay, draw_pool


def grow_generator(G: Generator, n_classes: int) -> Generator:
    """A copy of a conditional plain G with ``n_classes`` class rows: the old ones kept, the
    new ones' bias zero (each new class starts at the class-free function)."""
    G2 = Generator(G.cfg, n_classes=n_classes)
    state = G.state_dict()
    cb = torch.zeros(G2.class_bias.weight.shape)  # [C0 * s0 * s0, n_classes]
    cb[:, :G.n_classes] = state["class_bias.weight"]
    state["class_bias.weight"] = cb
    G2.load_state_dict(state)
    return G2


def grow_discriminator(D: Discriminator, n_classes: int, start: tuple[torch.Tensor, torch.Tensor]
                       ) -> Discriminator:
    """A copy of a conditional plain D with ``n_classes`` logit rows: the old ones kept, a new
    one starting at ``start`` (the source's (weight row, bias))."""
    D2 = Discriminator(D.cfg, n_classes=n_classes)
    state = D.state_dict()
    for key, row in zip(("fc.weight", "fc.bias"), start):
        rows = row.expand(n_classes, *row.shape).clone()
        rows[:D.n_classes] = state[key]
        state[key] = rows
    D2.load_state_dict(state)
    return D2


class MerGAN(GenerativeReplay):
    """One conditional GAN over all classes so far, trained with replay of its own samples.

    Args:
        cfg, out, log: as :class:`Strategy`.
        gan: GAN options per task (default ``replay_gan_config(cfg.seed)``, as gan-memory).
        source: the starting source (default: the shipped one, as gan-memory).
        progress: show the GAN's progress bar.
        device: torch device the GAN trains and samples on.
    """

    name = "mergan"

    def __init__(self, cfg: LifelongConfig, out: Path, log: Callable[[str], None],
                 gan: TrainConfig | None = None, source: str | Path | None = None, progress: bool = True,
                 device: str = "cpu") -> None:
        super().__init__(cfg, out, log)
        if cfg.replay_keep < 1:  # its pools are redrawn from the changing GAN, long after the real data
            raise GanMemoryError("the replay judge (--replay-keep below 1) is for gan-memory; mergan redraws "
                                 "every pool after each task, when the old tasks' real images are gone")
        self._set_gan(gan, device)
        self.src = Source.load(source)
        if self.src.cfg.resolution != cfg.resolution:
            raise GanMemoryError(f"the source is {self.src.cfg.resolution} px but the classifier reads "
                                 f"{cfg.resolution} px: pass --resolution {self.src.cfg.resolution}")
        self.progress, self.device = progress, device
        self.G_ema: Generator | None = None
        self.G: Generator | None = None
        self.D: Discriminator | None = None
        self.seconds: list[float] = []
        d_src = self.src.D.state_dict()
        self.d_start = (d_src["fc.weight"][0].clone(), d_src["fc.bias"][0].clone())  # a new class's D row

    def _start(self, n_classes: int) -> None:
        G, D = Generator(self.src.cfg, n_classes=n_classes), Discriminator(self.src.cfg, n_classes=n_classes)
        G.load_source(self.src.G.state_dict())
        D.load_source(self.src.D.state_dict())
        self.G, self.D, self.G_ema = G, D, None

    def before_task(self, model: Classifier, index: int, task: ClassTask, data: TaskData,
                    seen: list[ClassTask]) -> None:
        seen_classes = sum(len(t.classes) for t in seen)
        if sorted(task.global_ids) != list(range(seen_classes, seen_classes + len(task.classes))):
            raise GanMemoryError("mergan needs the tasks' classes numbered in order of appearance")
        # 1. the classifier's pools: every earlier task, drawn from the GAN as it stands now
        self.pool.clear()
        old_images, old_labels = [], []
        for j, old in enumerate(seen):
            images, labels = draw_pool(self._sample, old, list(old.global_ids), self.cfg.replay_pool,
                                       self.src.cfg.z_dim, seed=self._seed("mergan-pool", index, j))
            self.pool.add(f"mergan-{j}", images, labels)
            # the GAN's own replay: as many images per old class as the task has per new class
            per_class = max(1, len(data.train_labels) // len(task.classes))
            keep = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in old.global_ids])
            old_images.append(images[keep])
            old_labels.append(labels[keep])
        # 2. the GAN learns the new classes on real data plus its replay
        n_classes = seen_classes + len(task.classes)
        if self.G is None:
            self._start(n_classes)
        else:
            self.G = grow_generator(self.G, n_classes)
            self.G_ema = grow_generator(self.G_ema, n_classes).requires_grad_(False)
            self.D = grow_discriminator(self.D, n_classes, self.d_start)
        images = np.concatenate([data.train_images, *old_images])
        labels = np.concatenate([data.train_labels, *old_labels]).astype(np.int64)
        train_set = ImageSet(f"mergan task {index}", images, labels, tuple(str(i) for i in range(n_classes)))
        torch.manual_seed(self._seed("mergan-gan", index, seed=self.gan.seed))
        self.G, self.D = self.G.to(self.device), self.D.to(self.device)
        if self.G_ema is not None:
            self.G_ema = self.G_ema.to(self.device)
        trainer = GANTrainer(self.G, self.D, self.gan, G_ema=self.G_ema)
        t0 = time.perf_counter()
        run_dir = self.out / "mergan" / f"task{index}"
        try:
            fit(trainer, train_set, run_dir, ckpt_meta={"task": index}, progress=self.progress,
                desc=f"mergan GAN, task {index}")
        except TrainingDiverged as exc:
            raise GanMemoryError(f"mergan's GAN diverged on task {index + 1} ('{task.name}') at iteration "
                                 f"{exc.iteration}: its losses are no longer finite. Run again with a lower "
                                 f"--gan-lr (this run: {self.gan.lr_g:g})") from exc
        (run_dir / "checkpoint.safetensors").unlink(missing_ok=True)  # the log stays; the GAN lives on here
        self.seconds.append(round(time.perf_counter() - t0, 1))
        self.G_ema = trainer.G_ema.eval()
        self.log(f"mergan: GAN trained on task {index} ({len(data.train_labels)} real + "
                 f"{len(labels) - len(data.train_labels)} replayed images, {self.seconds[-1] / 60:.1f} min)")
        if self.cfg.replay_current > 0:
            self.pool.set_current(f"mergan-{index}", *draw_pool(
                self._sample, task, list(task.global_ids), self.cfg.replay_pool, self.src.cfg.z_dim,
                seed=self._seed("mergan-pool", index, index)))

    @torch.no_grad()
    def _sample(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.G_ema.eval()(z.to(self.device), y.to(self.device)).cpu()

    def state_dict(self) -> dict[str, torch.Tensor]:
        if self.G is None:
            return {}
        return {**prefixed("G", self.G.state_dict()), **prefixed("D", self.D.state_dict()),
                **prefixed("G_ema", self.G_ema.state_dict()),
                "seconds": torch.tensor(self.seconds, dtype=torch.float64)}

    def restore(self, done: list[tuple[ClassTask, TaskData]], state: dict[str, torch.Tensor]) -> None:
        if not done:
            return
        n_classes = sum(len(task.classes) for task, _ in done)
        self.G, self.D = Generator(self.src.cfg, n_classes=n_classes), Discriminator(self.src.cfg, n_classes=n_classes)
        self.G_ema = Generator(self.src.cfg, n_classes=n_classes).requires_grad_(False)
        try:
            for net, key in ((self.G, "G"), (self.D, "D"), (self.G_ema, "G_ema")):
                net.load_state_dict(unprefixed(key, state))
        except RuntimeError as exc:
            raise GanMemoryError(f"mergan: the saved GAN does not fit {len(done)} finished task(s) "
                                 f"with {n_classes} classes ({exc})") from None
        self.G_ema = self.G_ema.to(self.device).eval()  # it draws the next task's pools
        self.seconds = [float(v) for v in state.get("seconds", torch.zeros(0)).tolist()]

    def summary(self) -> dict:
        n = sum(p.numel() for p in self.G.parameters()) if self.G is not None else 0
        return {"generator_parameters": n, "gan_seconds": self.seconds, "gan": self.gan.to_dict(),
                "pool": self.pool.sizes()}
