"""The GAN trainer: a D step and a G step (docs/method.md, section 2), each returning plain floats.

Every random draw of step ``it`` comes from a generator seeded by (seed, it), and the batch
order is a seeded permutation per epoch, so a run stopped and resumed from a checkpoint takes
exactly the steps of a run never stopped.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext
from typing import Any, Callable, ContextManager, Iterable

import torch
from torch import nn

from ..data import preprocess
from ..distributed import SINGLE, DistContext, average_gradients, mean_over_ranks
from ..nets.modulated import kernels_built_once
from ..seeds import generator
from ..store import optimizer_from_tensors, optimizer_to_tensors, prefixed, unprefixed
from .config import TrainConfig
from .ema import ema_beta_at, ema_update
from .losses import d_loss_nonsaturating, g_loss_nonsaturating, mode_seeking_penalty, r1_penalty
from .precision import autocast, resolve


class BatchSchedule:
    """Which data indices the global batch of step ``it`` holds: epochs of seeded permutations
    (shuffle, drop the last partial batch). Stateless, so resuming at any step needs only the
    step number; in multi-process runs every rank computes the same global batch and takes its
    slice of it (see ``distributed.py``).
    """

    def __init__(self, n: int, batch_size: int, seed: int, seeds: str = "sha256"):
        self.n, self.batch_size, self.seed, self.seeds = n, batch_size, seed, seeds
        self.steps_per_epoch = max(1, n // batch_size)
        self._epoch, self._perm = -1, None

    def indices(self, it: int) -> torch.Tensor:
        epoch, k = divmod(it, self.steps_per_epoch)
        if epoch != self._epoch:
            g = generator(self.seed, "epoch", epoch, rule=self.seeds)
            self._perm, self._epoch = torch.randperm(self.n, generator=g), epoch
        idx = self._perm[k * self.batch_size:(k + 1) * self.batch_size]
        if len(idx) < self.batch_size:  # fewer images than one batch: draw with repeats
            g = generator(self.seed, "short-batch", it, rule=self.seeds)
            idx = self._perm[torch.randint(len(self._perm), (self.batch_size,), generator=g)]
        return idx


def step_generator(seed: int, it: int, seeds: str = "sha256") -> torch.Generator:
    """The random generator for step ``it``: a pure function of (seed, it) under rule ``seeds``."""
    return generator(seed, "step", it, rule=seeds)


class GANTrainer:
    """Owns G, its EMA, D and two Adam optimizers over the given parameter lists.

    ``g_params`` / ``d_params`` default to every parameter; GAN memory passes only the task
    parameters, so nothing else can change.

    ``fast`` (the default) builds each modulated network's kernels once per network state in a
    step (G once; D once for the D step and once for the G step) and uses the fused Adam.
    ``fast=False`` is the eager reference: every forward call rebuilds its kernels and Adam
    loops over tensors. Both compute the same maths; results agree to float rounding
    (tested), so the choice is not stored with a task.

    ``cfg.precision`` resolves on the parameters' device (``precision.resolve``; ``learn`` and
    ``pretrain`` resolve it first, to store it). Under bf16 the forward passes of G and D run in
    bf16 autocast (``precision.py``); the logits are cast back to float32 before the losses and
    R1, and the parameters, Adam's state and the EMA stay float32.

    ``g_regulariser(iteration)`` may add a term to the generator's loss (or return None):
    ``learn --lowrank`` adds its singular-value penalty on every 10th step this way.
    """

    def __init__(self, G: nn.Module, D: nn.Module, cfg: TrainConfig,
                 g_params: Iterable[nn.Parameter] | None = None,
                 d_params: Iterable[nn.Parameter] | None = None,
                 G_ema: nn.Module | None = None, dist: DistContext = SINGLE, fast: bool = True,
                 g_regulariser: Callable[[int], torch.Tensor | None] | None = None):
        if cfg.mode_seeking > 0:
            cfg.check_divisible(dist.world_size)  # each process must take whole pairs
        self.G, self.D, self.cfg, self.dist, self.fast = G, D, cfg, dist, fast
        self.g_regulariser = g_regulariser
        self.G_ema = G_ema if G_ema is not None else copy.deepcopy(G).requires_grad_(False)
        self.g_params = list(g_params) if g_params is not None else list(G.parameters())
        self.d_params = list(d_params) if d_params is not None else list(D.parameters())
        adam = dict(betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, **({"fused": True} if fast else {"foreach": False}))
        self.opt_g = torch.optim.Adam(self.g_params, lr=cfg.lr_g, **adam)
        self.opt_d = torch.optim.Adam(self.d_params, lr=cfg.lr_d, **adam)
        self.precision = resolve(cfg.precision, self.device, lambda _: None)
        self.iteration = 0
        self.r1_last = 0.0  # the latest R1 computed: with lazy R1, most steps compute none

    @property
    def device(self) -> torch.device:
        return self.g_params[0].device

    def _once(self, net: nn.Module) -> ContextManager[None]:
        return kernels_built_once(net) if self.fast else nullcontext()

    def _autocast(self) -> ContextManager[None]:
        return autocast(self.precision, self.device)

    def _z(self, n: int, gen: torch.Generator) -> torch.Tensor:
        return torch.randn(n, self.G.cfg.z_dim, generator=gen).to(self.device)  # [N, z_dim]

    def d_step(self, real: torch.Tensor, y: torch.Tensor, z: torch.Tensor, y_fake: torch.Tensor
               ) -> dict[str, float]:
        """One D update: BCE on reals and fakes plus r1_gamma * R1 on the reals."""
        self.D.train()
        for p in self.d_params:
            p.requires_grad_(True)
        self.opt_d.zero_grad(set_to_none=True)
        use_r1 = self.cfg.r1_gamma > 0 and self.iteration % self.cfg.r1_every == 0
        real = real.detach().requires_grad_(use_r1)
        with self._once(self.D):
            with self._autocast():  # the losses and R1 read float32 logits
                real_logits = self.D(real, y).float()
                with torch.no_grad():
                    fake = self.G(z, y_fake)
                fake_logits = self.D(fake, y_fake).float()
            loss_real, loss_fake = d_loss_nonsaturating(real_logits, fake_logits)
            loss = loss_real + loss_fake
            r1 = torch.zeros(())
            if use_r1:
                r1 = r1_penalty(real_logits, real)
                loss = loss + (self.cfg.r1_gamma * self.cfg.r1_every) * r1
            loss.backward()
        if use_r1:
            self.r1_last = r1.item()
        average_gradients(self.d_params, self.dist.world_size)
        self.opt_d.step()
        return {"d_loss_real": loss_real.item(), "d_loss_fake": loss_fake.item(), "r1": r1.item(),
                "d_real": real_logits.mean().item(), "d_fake": fake_logits.mean().item()}

    def g_step(self, z: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """One G update with the non-saturating loss (plus ``mode_seeking`` x MSGAN's term, logged
        unweighted as "mode_seeking"); D is frozen, then the EMA follows."""
        self.G.train()
        for p in self.d_params:
            p.requires_grad_(False)
        self.opt_g.zero_grad(set_to_none=True)
        with self._once(self.D):
            with self._autocast():
                fake = self.G(z, y)
                logits = self.D(fake, y).float()
            loss = g_loss_nonsaturating(logits)
            total, stats = loss, {"g_loss": loss.item()}
            if self.cfg.mode_seeking > 0:
                world = self.dist.world_size
                ms = mode_seeking_penalty(fake, z, mean_over_ranks=(lambda t: mean_over_ranks(t, world))
                                          if world > 1 else None)
                total, stats["mode_seeking"] = total + self.cfg.mode_seeking * ms, ms.item()
            extra = self.g_regulariser(self.iteration) if self.g_regulariser is not None else None
            (total if extra is None else total + extra).backward()
        average_gradients(self.g_params, self.dist.world_size)
        self.opt_g.step()
        for p in self.d_params:
            p.requires_grad_(True)
        ema_update(self.G_ema, self.G, ema_beta_at(self.iteration + 1, self.cfg.ema_beta, self.cfg.ema_rampup))
        return stats

    def train_step(self, images_u8: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        """One full iteration on the global uint8 batch [N, H, W, 3]; increments ``iteration``.

        Every random draw is made for the whole global batch, then each rank keeps its slice
        (for the G step under the mode-seeking term, its share of whole pairs), so N processes
        compute exactly the batch one process would.
        """
        gen = step_generator(self.cfg.seed, self.iteration, self.cfg.seeds)
        scale = self.cfg.lr_scale(self.iteration)
        for opt, lr in ((self.opt_d, self.cfg.lr_d), (self.opt_g, self.cfg.lr_g)):
            for group in opt.param_groups:
                group["lr"] = lr * scale
        n = images_u8.shape[0]
        real = preprocess(images_u8, gen, flip=self.cfg.flip)
        z_d, z_g = self._z(n, gen), self._z(n, gen)
        y = labels if self.cfg.conditional else torch.zeros(n, dtype=torch.long)
        y_g, half = y, n // 2
        if self.cfg.mode_seeking > 0:  # the term pairs row i with row i + n/2: one label per pair
            y_g = torch.cat([y[:half], y[:half], y[2 * half:]])
        world, rank = self.dist.world_size, self.dist.rank
        if world > 1:
            if n % world:
                raise ValueError(f"batch {n} is not divisible by {world} processes")
            part = slice(rank * n // world, (rank + 1) * n // world)
            real, y, z_d = real[part], y[part], z_d[part]
            rows: slice | torch.Tensor = part
            if self.cfg.mode_seeking > 0:  # whole pairs: this rank's share of the first half and their partners
                if n % (2 * world):
                    raise ValueError(f"batch {n} is not divisible into pairs over {world} processes")
                first = torch.arange(rank * half // world, (rank + 1) * half // world)
                rows = torch.cat([first, first + half])
            z_g, y_g = z_g[rows], y_g[rows]
        real, y, y_g = real.to(self.device), y.to(self.device), y_g.to(self.device)
        with self._once(self.G):  # G does not change until its own update, at the end
            stats = self.d_step(real, y, z_d, y)
            stats.update(self.g_step(z_g, y_g))
        self.iteration += 1
        return stats

    # -------------------------------------------------------------- state for checkpoints

    def state_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """What a resumable checkpoint needs: the trained parameters (for a GAN memory, only
        the task's) of G, its EMA and D, and both optimizers' state."""
        tensors = {}
        tensors.update(prefixed("G", self.G.task_state_dict()))
        tensors.update(prefixed("G_ema", self.G_ema.task_state_dict()))
        tensors.update(prefixed("D", self.D.task_state_dict()))
        og, og_meta = optimizer_to_tensors(self.opt_g, "opt_g")
        od, od_meta = optimizer_to_tensors(self.opt_d, "opt_d")
        tensors.update(og)
        tensors.update(od)
        return tensors, {"iteration": self.iteration, "opt_g": og_meta, "opt_d": od_meta}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.G.load_task_state(unprefixed("G", tensors))
        self.G_ema.load_task_state(unprefixed("G_ema", tensors))
        self.D.load_task_state(unprefixed("D", tensors))
        optimizer_from_tensors(self.opt_g, tensors, meta["opt_g"], "opt_g")
        optimizer_from_tensors(self.opt_d, tensors, meta["opt_d"], "opt_d")
        self.iteration = int(meta["iteration"])
