"""Learning a task: the training run over the source, resuming it, scoring it while it learns,
and writing the finished task."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import torch

from ..atomic import atomic_write_bytes
from ..compress import LowRankConfig
from ..data import ImageSet, load_data
from ..distributed import SINGLE, DistContext, any_rank, barrier
from ..errors import GanMemoryError, TrainingDiverged
from ..images import save_grid
from ..locks import BASES_LOCK, TaskLock, locked
from ..nets import Discriminator
from ..source import latents
from ..store import read_meta
from ..train import GANTrainer, TrainConfig
from ..train.loop import fit, load_checkpoint
from ..train.precision import resolve
from .lowrank import LowRankStore, lowrank_regulariser


class Learning(LowRankStore):
    """``learn``: trains only a task's own parameters; every other task is left as it was."""

    def learn(self, name: str, data_spec: str, train: TrainConfig, *, resume: bool = False,
              overwrite: bool = False, progress: bool = True, log: Callable[[str], None] = print,
              dist: DistContext = SINGLE, eval_every: int = 0, eval_n: int = 1000,
              eval_metric: str = "fd-el0", eval_data: str | None = None,
              lowrank: LowRankConfig | None = None) -> dict[str, Any]:
        """Learn task ``name`` on ``data_spec``; only its own parameters are trained.

        ``lowrank`` trains the generator's conv gamma / beta in the bank's accumulated bases
        (docs/method.md, section 4; ``compress.py``). The finished task stores only its coefficients,
        the bases grow by the columns it needs, and, like any compressed task, it can be
        sampled, interpolated and replayed but not trained further.

        With ``eval_every`` > 0 the EMA generator is scored against ``data_spec`` every that
        many iterations and at the end (``eval_n`` images, ``eval_metric``), or against
        ``eval_data`` when given (e.g. a test split); the history goes into the task's metadata,
        a plot into ``BANK/plots/NAME.png`` and a sample grid per score into ``BANK/plots/NAME/``.

        In a torchrun launch pass ``dist`` (``distributed.setup()``): every rank trains its
        slice of each batch and only rank 0 writes files.

        The task's lock is held from before the bank is looked at to after the task file's
        final rename, so a second writer of the same name fails at once with one error. The data
        is loaded before the lock is taken: decoding a folder forks worker processes, and a fork
        shares the lock, so workers orphaned by a killed learn would otherwise keep holding it."""
        if self._task_path(name).exists() and not overwrite:  # fail before decoding; checked again under the lock
            raise self._exists(name)
        data = load_data(data_spec, self.cfg.resolution)
        lock = TaskLock(self.root, name)
        got = lock.try_acquire(f"learn {name}") if dist.is_writer else True
        if any_rank(not got, dist):  # every rank stops together
            lock.release()
            raise lock.busy() if dist.is_writer else GanMemoryError(f"task '{name}' is in use by another process")
        try:
            if dist.is_writer:
                self._clear_temporary(name)
            return self._learn(name, data_spec, data, train, resume=resume, overwrite=overwrite,
                               progress=progress, log=log, dist=dist, eval_every=eval_every, eval_n=eval_n,
                               eval_metric=eval_metric, eval_data=eval_data or data_spec, lowrank=lowrank)
        finally:
            lock.release()

    def _exists(self, name: str) -> GanMemoryError:
        return GanMemoryError(f"task '{name}' already exists in bank '{self.root}': pass --overwrite "
                              "to replace it, or choose another --task name")

    def _check_start(self, name: str, data_spec: str, train: TrainConfig, resume: bool, overwrite: bool,
                     dist: DistContext, lowrank: LowRankConfig | None,
                     log: Callable[[str], None]) -> tuple[Path, TrainConfig]:
        """Refuse a learn that would overwrite or drop work without being told to, or resume
        another run; clear an unfinished learn that ``overwrite`` replaces. Returns the path of
        the task's training checkpoint and the options to train with: the precision resolved for
        this device (a resumed learn keeps the seed rule it began with, and under ``auto`` its
        precision)."""
        train.check_divisible(dist.world_size)
        path, work = self._task_path(name), self.root / "work" / name
        ckpt = work / "checkpoint.safetensors"
        if path.exists() and not overwrite:
            raise self._exists(name)
        if resume and not ckpt.exists():
            raise GanMemoryError(f"--resume given but task '{name}' has no unfinished learn in '{work}'")
        if ckpt.exists() and not resume:
            if not overwrite:
                raise GanMemoryError(f"task '{name}' has an unfinished learn in '{work}': pass --resume to "
                                     "continue it, or --overwrite to start again")
            barrier()  # every rank has seen the checkpoint before rank 0 removes it
            if dist.is_writer:
                shutil.rmtree(work)
        meta = read_meta(ckpt) if resume else {}
        train = train.continuing(meta.get("train"))
        train = replace(train, precision=resolve(train.precision, dist.device, log))  # what runs is stored
        if resume and (meta.get("data") != data_spec or not isinstance(meta.get("train"), dict)
                       or not train.resumes(meta["train"])
                       or meta.get("lowrank") != (lowrank.to_dict() if lowrank else None)):
            differ = train.differences(meta.get("train"))
            raise GanMemoryError(f"cannot resume task '{name}': it was started with data "
                                 f"'{meta.get('data')}' and other options"
                                 f"{f' ({differ})' if differ else ''}; only --iters may change")
        return ckpt, train

    def _trainer(self, name: str, n_classes: int, train: TrainConfig, resume: bool, ckpt: Path, dist: DistContext,
                 lowrank: LowRankConfig | None) -> tuple[GANTrainer, dict[str, int]]:
        """A trainer of a new task's own parameters, every one at the source; with ``lowrank``
        the generator's conv modulation is factorised over the bank's trained bases (returned:
        how many columns each basis had when the task started)."""
        torch.manual_seed(train.seed)
        G = self._new_generator(n_classes, train.layout)
        D = Discriminator(self.cfg, modulated=True, n_classes=n_classes, layout=train.layout)
        D.load_source(self.source.D.state_dict())
        regulariser, basis_k = None, {}
        if lowrank is not None:
            factors = self._factorise(G, lowrank)
            basis_k = {key: f.u.shape[1] for key, f in factors.items()}
            if resume and read_meta(ckpt).get("lowrank_k") != basis_k:
                raise GanMemoryError(f"cannot resume task '{name}': the bank's trained bases have grown since "
                                     "it started (another --lowrank task finished); learn it again with --overwrite")
            regulariser = lowrank_regulariser(lowrank, [f.s for f in factors.values()])
        G, D = G.to(dist.device), D.to(dist.device)
        trainer = GANTrainer(G, D, train, g_params=G.task_parameters(), d_params=D.task_parameters(), dist=dist,
                             g_regulariser=regulariser)
        return trainer, basis_k

    def _learn(self, name: str, data_spec: str, data: ImageSet, train: TrainConfig, *, resume: bool, overwrite: bool,
               progress: bool, log: Callable[[str], None], dist: DistContext, eval_every: int, eval_n: int,
               eval_metric: str, eval_data: str, lowrank: LowRankConfig | None) -> dict[str, Any]:
        ckpt, train = self._check_start(name, data_spec, train, resume, overwrite, dist, lowrank, log)
        work = ckpt.parent
        if data.note and dist.is_writer:
            log(f"note: {data.note}")
        n_classes = len(data.classes) if train.conditional else 0
        trainer, basis_k = self._trainer(name, n_classes, train, resume, ckpt, dist, lowrank)
        ckpt_meta = {"task": name, "data": data_spec, "train": train.to_dict(),
                     "source_hash": self.source.file_hash}
        if lowrank is not None:
            ckpt_meta.update({"lowrank": lowrank.to_dict(), "lowrank_k": basis_k})
        prior = 0.0
        if resume:
            prior = float(load_checkpoint(trainer, ckpt).get("seconds", 0.0))
            if dist.is_writer:
                log(f"resuming task '{name}' at iteration {trainer.iteration}")
        on_step = None
        history_path = work / "metrics.jsonl"
        if eval_every > 0 and dist.is_writer:
            if not resume:  # grids of an earlier learn of this name
                shutil.rmtree(self._grid_dir(name), ignore_errors=True)
            on_step = self._evaluator(trainer, name, eval_data, eval_every, eval_n, eval_metric, history_path, log,
                                      n_classes, prior)
            if trainer.iteration == 0:
                on_step(0, {})
        t0 = time.perf_counter()
        try:
            summary = fit(trainer, data, work, ckpt_meta={**ckpt_meta, "seconds": prior}, progress=progress,
                          desc=f"learn {name}", on_step=on_step)
        except TrainingDiverged as exc:
            again = "; pass --overwrite to drop its unfinished learn" if ckpt.exists() else ""
            raise GanMemoryError(f"learning task '{name}' diverged at iteration {exc.iteration} (its GAN losses "
                                 f"are no longer finite) and nothing was stored in bank '{self.root}'. Learn it "
                                 f"again with a lower learning rate (this run: {train.lr_g:g}) or another seed{again}"
                                 ) from exc
        barrier()
        history = [json.loads(line) for line in history_path.read_text().splitlines()] \
            if history_path.exists() else []
        n_task, n_g = self.generator_param_count(n_classes, train.layout)
        meta = {"name": name, "data": data_spec,
                "classes": list(data.classes), "n_classes": n_classes, "images": len(data),
                "layout": train.layout.to_dict(),
                "resolution": self.cfg.resolution,
                "iterations": trainer.iteration, "seed": train.seed, "train": train.to_dict(),
                "seconds": round(prior + time.perf_counter() - t0, 2),
                "seconds_per_iteration": round(summary["seconds"] / max(1, summary["steps_this_run"]), 4),
                "metrics": history, "source_hash": self.source.file_hash, "task_parameters": n_task,
                "generator_parameters": n_g, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "last": summary["last"], "processes": dist.world_size}
        if dist.is_writer:
            trainer.G.cpu(), trainer.G_ema.cpu(), trainer.D.cpu()
            if lowrank is None:
                meta = self._write_task(name, trainer, meta)
            else:
                with locked(self.root, [BASES_LOCK], f"learn {name}"):
                    meta = self._write_lowrank_task(name, trainer.G_ema, basis_k, lowrank, meta)
            if history:
                self._plot_history(name, history)
            self._drop_work(name)
        barrier()
        return meta

    def _evaluator(self, trainer: GANTrainer, name: str, data_spec: str, every: int, n: int, metric: str,
                   history_path: Path, log: Callable[[str], None], n_classes: int = 0, prior: float = 0.0
                   ) -> Callable[[int, dict], None]:
        """Scores the EMA generator against ``data_spec`` every ``every`` iterations and at the end.
        Each record holds the iteration, the seconds spent learning so far (scoring excluded;
        ``prior`` from before a resume), the score, n and the data; a 64-sample grid of the same moment goes to
        ``BANK/plots/NAME/iter_XXXXXXX.png``."""
        from ..evaluate import Scorer
        scorer = Scorer(data_spec, self.cfg.resolution, metric, n)
        device = trainer.device
        grids = self._grid_dir(name)
        z_grid = latents(64, self.cfg.z_dim, 0).to(device)
        t0, scoring = time.perf_counter(), [0.0]

        def sample(z: torch.Tensor) -> torch.Tensor:
            # a conditional task is scored on its classes in turn, against all of its data
            y = (torch.arange(len(z)) % n_classes).to(device) if n_classes else None
            return trainer.G_ema.eval()(z.to(device), y).clamp(-1, 1).cpu()

        def on_step(it: int, _stats: dict) -> None:
            if it % every and it != trainer.cfg.iters:
                return
            t_score = time.perf_counter()
            res = scorer.score(sample, self.cfg.z_dim, seed=0)
            record = {"iteration": it, "seconds": round(prior + t_score - t0 - scoring[0], 2),
                      res["metric"]: round(res["value"], 4), "n": res["n_generated"], "data": data_spec}
            old = history_path.read_text() if history_path.exists() else ""
            atomic_write_bytes(history_path, (old + json.dumps(record) + "\n").encode())
            with torch.no_grad():
                save_grid(sample(z_grid), grids / f"iter_{it:07d}.png", nrow=8, scale=2)
            log(f"iteration {it}: {res['metric']} = {res['value']:.3f} ({res['n_generated']} images)")
            scoring[0] += time.perf_counter() - t_score
        return on_step

    def _plot_history(self, name: str, history: list[dict[str, Any]]) -> Path:
        from ..plots import plot_curves
        metric = next(k for k in history[0] if k not in ("iteration", "seconds", "n", "data"))
        path = self.root / "plots" / f"{name}.png"
        plot_curves({name: ([h["iteration"] for h in history], [h[metric] for h in history])}, path,
                    title=f"task '{name}': {metric} against iterations ({history[-1]['n']} images)",
                    xlabel="iteration", ylabel=metric)
        return path
