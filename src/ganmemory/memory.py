"""The memory bank: one frozen source and one small file per learned task.

On disk::

    BANK/bank.json                 format, version, the source's hash
    BANK/source.safetensors        the frozen source (G = EMA generator, D)
    BANK/tasks/NAME.safetensors    task parameters: G (EMA, used to sample), G_train, D, optimizers;
                                   the header holds the task's metadata (the authoritative copy)
    BANK/tasks/NAME.json           the same metadata, for people and tools
    BANK/bases.safetensors         bases shared by the bank's tasks: orthonormal ones grown by
                                   ``compress --shared``, and the columns tasks learned with
                                   ``--lowrank`` add; they only ever grow, so every task's column
                                   prefix stays valid
    BANK/work/NAME/                an unfinished ``learn``: checkpoint, log, samples

Every file is written atomically, and a task file appears only when its training has ended,
so an interrupted ``learn`` leaves every earlier task as it was.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .atomic import atomic_write_bytes, atomic_write_json
from .compress import (SDIAG_SUFFIX, TRAINED_U, TRAINED_V, LowRankConfig, compress_shared, compress_state,
                       expand_shared, expand_state, expand_trained, fold_residual, stored_parameters)
from .data import ImageSet, load_data
from .distributed import SINGLE, DistContext, any_rank, barrier
from .errors import GanMemoryError, TrainingDiverged
from .locks import BASES_LOCK, TaskLock, locked
from .nets import PAPER_LAYOUT, Discriminator, Generator, TaskLayout
from .nets.modulated import LowRankDelta, ModulatedConv2d
from .source import Source, generate, latents
from .store import check_complete, load_artifact, load_checked, prefixed, read_meta, save_artifact, unprefixed
from .taskfile import (TASK_FORMAT, check_shapes, check_task_meta, check_task_name, check_task_tensors, sidecar,
                       task_file, task_layout, write_task_file)
from .train import GANTrainer, TrainConfig
from .train.losses import singular_value_penalty
from .train.loop import fit, load_checkpoint

BANK_FORMAT, BANK_VERSION = "ganmemory-bank", 1
BASES_FORMAT = "ganmemory-bases"
# what an interrupted atomic write leaves in tasks/: '.NAME.safetensors.XXXXXXXX.tmp' (or .json)
_LEFTOVER = re.compile(r"\.(.+)\.(safetensors|json)\.[A-Za-z0-9_]+\.tmp")


@dataclass
class TaskInfo:
    name: str
    meta: dict[str, Any] | None  # None when the file is corrupted
    error: str | None
    bytes: int


@dataclass
class Leftover:
    """What an interrupted writer left: a temporary file of a cut save, or an unfinished learn."""
    task: str
    path: Path
    kind: str  # "temporary" or "unfinished"


class MemoryBank:
    """A bank of tasks over one frozen source. ``MemoryBank.create`` makes one, the
    constructor opens one."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        info_path = self.root / "bank.json"
        if not info_path.exists():
            raise GanMemoryError(f"'{self.root}' is not a memory bank (no bank.json): "
                                 f"create one with 'ganmemory init --out {self.root}'")
        try:
            self.info = json.loads(info_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise GanMemoryError(f"'{info_path}' is corrupted ({type(exc).__name__})") from None
        if not isinstance(self.info, dict) or self.info.get("format") != BANK_FORMAT:
            raise GanMemoryError(f"'{info_path}' is not a ganmemory bank description")
        if not isinstance(self.info.get("source_hash"), str):
            raise GanMemoryError(f"'{info_path}' is corrupted: it names no source hash")
        self.source = Source.load(self.root / "source.safetensors")
        if self.source.file_hash != self.info.get("source_hash"):
            raise GanMemoryError(f"bank '{self.root}': its source.safetensors (hash {self.source.file_hash}) "
                                 f"is not the source the bank was built on ({self.info.get('source_hash')})")
        self.cfg = self.source.cfg
        # by (number of classes (0: unconditional), task layout)
        self._samplers: dict[tuple[int, TaskLayout], Generator] = {}
        self._starts: dict[tuple[int, TaskLayout], dict[str, torch.Tensor]] = {}
        self._shapes: dict[tuple[str, int, TaskLayout], dict[str, torch.Size]] = {}

    # ------------------------------------------------------------------ creation and listing

    @classmethod
    def create(cls, root: str | os.PathLike, source_path: str | os.PathLike | None = None) -> "MemoryBank":
        root = Path(root)
        if (root / "bank.json").exists():
            raise GanMemoryError(f"'{root}' is already a memory bank; choose another --out")
        if root.exists() and any(root.iterdir()):
            raise GanMemoryError(f"'{root}' exists and is not empty; choose another --out")
        src = Source.load(source_path)  # validates the file before anything is written
        from .source import default_source_path
        src_file = Path(source_path) if source_path is not None else default_source_path()
        (root / "tasks").mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(root / "source.safetensors", src_file.read_bytes())
        atomic_write_json(root / "bank.json", {"format": BANK_FORMAT, "format_version": BANK_VERSION,
                                               "source_hash": src.file_hash, "net": src.cfg.to_dict(),
                                               "created": time.strftime("%Y-%m-%dT%H:%M:%S")})
        return cls(root)

    def _task_path(self, name: str) -> Path:
        """The one mapping from a task name to its file; refuses names that are not plain names."""
        return task_file(self.root / "tasks", name)

    def task_infos(self, verify: bool = True) -> list[TaskInfo]:
        """Every task file, in the order learned; a damaged one carries its error, and the
        others are listed as usual. ``verify`` also reads and checks every task's tensors
        (their hash, values, names and shapes); without it only the headers are checked."""
        out = []
        for path in sorted((self.root / "tasks").glob("*.safetensors")):
            if path.name.startswith("."):
                continue
            name = path.name[: -len(".safetensors")]
            size = path.stat().st_size + (sidecar(path).stat().st_size if sidecar(path).exists() else 0)
            try:
                meta = self.load_task(name)[1] if verify else self.task_meta(name)
                out.append(TaskInfo(name, meta, None, size))
            except GanMemoryError as exc:
                out.append(TaskInfo(name, None, str(exc), size))
        out.sort(key=lambda t: (t.meta or {}).get("created", "~"))
        return out

    def tasks(self) -> list[str]:
        """The names of the bank's task files, in the order learned (damaged ones included)."""
        return [t.name for t in self.task_infos(verify=False)]

    def _require(self, name: str) -> Path:
        path = self._task_path(name)
        if not path.exists():
            known = ", ".join(self.tasks()) or "none yet"
            raise GanMemoryError(f"unknown task '{name}' in bank '{self.root}'; known tasks: {known}")
        return path

    def task_meta(self, name: str) -> dict[str, Any]:
        """A task's metadata, checked against the task header's schema (no tensor is read)."""
        path = self._require(name)
        check_complete(path)
        return check_task_meta(read_meta(path), path, self.cfg.resolution, self.source.file_hash)

    def load_task(self, name: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """A task's tensors (compressed forms expanded to full matrices) and metadata.

        Checked before use: the header's schema, the tensors' hash, that every value is finite,
        and that the tensors have exactly the names and shapes of this bank's networks. Any
        fault raises one error naming the task and the fault."""
        meta = self.task_meta(name)
        path = self._task_path(name)
        tensors, digest, non_finite = load_checked(path)
        check_task_tensors(path, tensors, meta, digest, non_finite)
        compressed = meta.get("compressed")
        if compressed and any(not k.startswith("G.") for k in tensors):
            raise GanMemoryError(f"task '{name}' ('{path}') is corrupted: a compressed task holds only "
                                 "generator tensors")
        try:
            mode = compressed.get("mode", "per-task") if compressed else None
            if mode == "shared":  # cores over the bank's bases
                tensors = prefixed("G", expand_shared(unprefixed("G", tensors), self.shared_bases()))
            elif mode == "lowrank-trained":  # coefficients over the bank's trained bases
                starts = self.task_start(meta["n_classes"], task_layout(meta))
                tensors = prefixed("G", expand_trained(unprefixed("G", tensors), self.shared_bases(), starts))
            elif mode == "per-task":  # low-rank factors -> full matrices, transparently
                tensors = prefixed("G", expand_state(unprefixed("G", tensors)))
        except (KeyError, RuntimeError, IndexError, ValueError) as exc:
            raise GanMemoryError(f"task '{name}' ('{path}') is corrupted: its compressed tensors do not fit "
                                 f"together ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") from None
        g_shapes = self._task_shapes("G", meta["n_classes"], task_layout(meta))
        check_shapes(path, "generator", unprefixed("G", tensors), g_shapes)
        if not compressed:  # a task stored whole keeps its training state too
            check_shapes(path, "trained generator", unprefixed("G_train", tensors), g_shapes)
            check_shapes(path, "discriminator", unprefixed("D", tensors),
                         self._task_shapes("D", meta["n_classes"], task_layout(meta)))
        return tensors, meta

    def _task_shapes(self, net: str, n_classes: int, layout: TaskLayout) -> dict[str, torch.Size]:
        """The names and shapes of a task's parameters of ``net`` ("G" or "D"), read off the
        bank's networks (the sampler for G; a discriminator built once for D)."""
        key = (net, n_classes, layout)
        if key not in self._shapes:
            module = self._modulated_generator(n_classes, layout) if net == "G" else \
                Discriminator(self.cfg, modulated=True, n_classes=n_classes, layout=layout)
            self._shapes[key] = {n: t.shape for n, t in module.task_state_dict().items()}
        return self._shapes[key]

    def shared_bases(self) -> dict[str, torch.Tensor]:
        """The bank's shared bases (empty when there are none yet)."""
        return self._bases_artifact()[0]

    def _bases_artifact(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        path = self.root / "bases.safetensors"
        if not path.exists():
            return {}, {}
        check_complete(path)
        return load_artifact(path, BASES_FORMAT)

    def _save_bases(self, bases: dict[str, torch.Tensor], **meta: Any) -> None:
        """Write the grown bases, keeping the file's other metadata."""
        old = self._bases_artifact()[1]
        save_artifact(self.root / "bases.safetensors", bases,
                      {**old, **meta, "format": BASES_FORMAT, "source_hash": self.source.file_hash})

    def task_start(self, n_classes: int = 0, layout: TaskLayout = PAPER_LAYOUT) -> dict[str, torch.Tensor]:
        """Where every task begins: the generator's task parameters at the source."""
        if (n_classes, layout) not in self._starts:
            G = self._new_generator(n_classes, layout)
            self._starts[n_classes, layout] = {k: v.clone() for k, v in G.task_state_dict().items()}
        return self._starts[n_classes, layout]

    def generator_param_count(self, n_classes: int = 0, layout: TaskLayout = PAPER_LAYOUT) -> tuple[int, int]:
        """(task parameters of the generator, all parameters of the source generator)."""
        G = self._modulated_generator(n_classes, layout)
        return (sum(p.numel() for p in G.task_parameters()),
                sum(p.numel() for p in self.source.G.parameters()))

    # ------------------------------------------------------------------ sampling

    def _new_generator(self, n_classes: int, layout: TaskLayout) -> Generator:
        """A modulated generator over the source, at the start of a task."""
        G = Generator(self.cfg, modulated=True, n_classes=n_classes, layout=layout)
        G.load_source(self.source.G.state_dict())
        return G

    def _modulated_generator(self, n_classes: int = 0, layout: TaskLayout = PAPER_LAYOUT) -> Generator:
        """The bank's sampler for tasks of this kind (one per class count and layout)."""
        if (n_classes, layout) not in self._samplers:
            self._samplers[n_classes, layout] = self._new_generator(n_classes, layout).eval()
        return self._samplers[n_classes, layout]

    def _kind(self, name: str) -> tuple[int, TaskLayout]:
        """What a task's networks are built for: its number of classes and its layout."""
        meta = self.task_meta(name)
        return meta["n_classes"], task_layout(meta)

    def task_generator(self, name: str) -> Generator:
        """A modulated generator set to ``name``'s (EMA) parameters. Shared: it changes with
        the next call; copy it to keep it. A conditional task's generator takes class indices
        (positions in the task's ``classes``) as its second argument."""
        tensors, meta = self.load_task(name)
        G = self._modulated_generator(meta["n_classes"], task_layout(meta))
        G.load_task_state(unprefixed("G", tensors))
        return G

    def class_indices(self, name: str, classes: Sequence[str] | None, n: int) -> torch.Tensor | None:
        """The generator labels for ``n`` samples of task ``name``: None for an unconditional
        task; for a conditional one, ``classes`` (names, each repeated n times, in order) or,
        when None, every class of the task in turn (i % n_classes)."""
        meta = self.task_meta(name)
        if not meta.get("n_classes"):
            if classes:
                raise GanMemoryError(f"task '{name}' is not class-conditional; it cannot sample --class")
            return None
        known = list(meta["classes"])
        if classes is None:
            return torch.arange(n) % len(known)
        idx = []
        for c in classes:
            if c not in known:
                raise GanMemoryError(f"task '{name}' has no class '{c}'; its classes: {', '.join(known)}")
            idx.append(known.index(c))
        return torch.tensor(idx).repeat_interleave(n)

    def sample(self, tasks: str | Sequence[str], n: int, seed: int = 0, classes: Sequence[str] | None = None,
               batched: bool = False) -> torch.Tensor:
        """``n`` images per task, [len(tasks) * n, 3, R, R] in [-1, 1], tasks in the order given.

        Every task uses the same latents (those of ``seed``), so each task's block equals a
        single-task call with that seed. A conditional task draws its classes in turn, or
        ``classes`` (names; then ``n`` per class: [len(tasks) * len(classes) * n, ...]).
        ``batched`` runs all tasks in one grouped pass (``sample_batched``, equal within float
        rounding); on this project's 2-core CPU that was slower than the loop (BENCHMARKS.md),
        so the loop is the default.
        """
        names = [tasks] if isinstance(tasks, str) else list(tasks)
        if not names:
            raise GanMemoryError("no task given to sample from")
        if classes is not None:
            return self.sample_pairs([(t, c) for t in names for c in classes], n, seed)
        z = latents(n, self.cfg.z_dim, seed)
        ys = [self.class_indices(t, None, n) for t in names]
        # one grouped pass needs task states of one shape: the same number of classes and layout
        if batched and len(names) > 1 and len({self._kind(t) for t in names}) == 1:
            return self.sample_batched(names, z, ys[0])
        return torch.cat([generate(self.task_generator(t), z, y) for t, y in zip(names, ys)])

    def sample_pairs(self, pairs: Sequence[tuple[str, str]], n: int, seed: int = 0) -> torch.Tensor:
        """``n`` images for each (task, class name) pair of conditional tasks, in the order
        given: [len(pairs) * n, 3, R, R]. Every pair uses the latents of ``seed``; the pairs of
        one task are drawn in one forward pass, batched over their classes."""
        if not pairs:
            raise GanMemoryError("no (task, class) pair given to sample from")
        z = latents(n, self.cfg.z_dim, seed)
        blocks: dict[int, torch.Tensor] = {}
        by_task: dict[str, list[int]] = {}
        for i, (t, _) in enumerate(pairs):
            by_task.setdefault(t, []).append(i)
        for t, rows in by_task.items():
            y = self.class_indices(t, [pairs[i][1] for i in rows], n)
            if y is None:
                raise GanMemoryError(f"task '{t}' is not class-conditional; it cannot sample a class")
            x = generate(self.task_generator(t), z.repeat(len(rows), 1), y)  # [len(rows) * n, 3, R, R]
            for k, i in enumerate(rows):
                blocks[i] = x[k * n:(k + 1) * n]
        return torch.cat([blocks[i] for i in range(len(pairs))])

    @torch.no_grad()
    def sample_batched(self, names: Sequence[str], z: torch.Tensor, y: torch.Tensor | None = None,
                       chunk: int = 256) -> torch.Tensor:
        """Every task in one forward pass: the task states are stacked and each modulated layer
        runs one grouped convolution over all tasks (see ``nets.modulated``). Returns
        [T * n, 3, R, R], task-major like the loop; equal to it up to float rounding."""
        states = [unprefixed("G", self.load_task(t)[0]) for t in names]
        stacked = {k: torch.stack([s[k] for s in states]) for k in states[0]}
        G = self._modulated_generator(*self._kind(names[0]))
        t = len(names)
        outs = []
        for i in range(0, len(z), chunk):
            zc = z[i:i + chunk]
            yc = None if y is None else y[i:i + chunk].repeat_interleave(t)
            x = torch.func.functional_call(G, stacked, (zc.repeat_interleave(t, 0), yc))  # [c * T, 3, R, R]
            outs.append(x.reshape(len(zc), t, *x.shape[1:]).transpose(0, 1))  # [T, c, 3, R, R]
        return torch.cat(outs, 1).reshape(t * len(z), *outs[0].shape[2:]).clamp(-1, 1)

    # ------------------------------------------------------------------ learning

    def learn(self, name: str, data_spec: str, train: TrainConfig, *, resume: bool = False,
              overwrite: bool = False, progress: bool = True, log: Callable[[str], None] = print,
              dist: DistContext = SINGLE, eval_every: int = 0, eval_n: int = 1000,
              eval_metric: str = "fd-el0", lowrank: LowRankConfig | None = None) -> dict[str, Any]:
        """Learn task ``name`` on ``data_spec``; only its own parameters are trained.

        ``lowrank`` trains the generator's conv gamma / beta in the bank's accumulated bases
        (docs/method.md, section 4; ``compress.py``). The finished task stores only its coefficients,
        the bases grow by the columns it needs, and, like any compressed task, it can be
        sampled, interpolated and replayed but not trained further.

        With ``eval_every`` > 0 the EMA generator is scored against ``data_spec`` every that
        many iterations and at the end (``eval_n`` images, ``eval_metric``); the history goes
        into the task's metadata and a plot into ``BANK/plots/NAME.png``.

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
                               eval_metric=eval_metric, lowrank=lowrank)
        finally:
            lock.release()

    def _exists(self, name: str) -> GanMemoryError:
        return GanMemoryError(f"task '{name}' already exists in bank '{self.root}': pass --overwrite "
                              "to replace it, or choose another --task name")

    def _learn(self, name: str, data_spec: str, data: ImageSet, train: TrainConfig, *, resume: bool, overwrite: bool,
               progress: bool, log: Callable[[str], None], dist: DistContext, eval_every: int, eval_n: int,
               eval_metric: str, lowrank: LowRankConfig | None) -> dict[str, Any]:
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
        if resume:
            meta = read_meta(ckpt)
            if meta.get("data") != data_spec or not isinstance(meta.get("train"), dict) \
                    or not train.resumes(meta["train"]) \
                    or meta.get("lowrank") != (lowrank.to_dict() if lowrank else None):
                raise GanMemoryError(f"cannot resume task '{name}': it was started with data "
                                     f"'{meta.get('data')}' and other options; only --iters may change")

        if data.note and dist.is_writer:
            log(f"note: {data.note}")
        n_classes = len(data.classes) if train.conditional else 0
        torch.manual_seed(train.seed)
        G = self._new_generator(n_classes, train.layout)
        D = Discriminator(self.cfg, modulated=True, n_classes=n_classes, layout=train.layout)
        D.load_source(self.source.D.state_dict())
        factors, regulariser, basis_k = {}, None, {}
        if lowrank is not None:
            factors = self._factorise(G, lowrank)
            basis_k = {key: f.u.shape[1] for key, f in factors.items()}
            if resume and read_meta(ckpt).get("lowrank_k") != basis_k:
                raise GanMemoryError(f"cannot resume task '{name}': the bank's trained bases have grown since "
                                     "it started (another --lowrank task finished); learn it again with --overwrite")
            regulariser = _penalty(lowrank, [f.s for f in factors.values()])
        G, D = G.to(dist.device), D.to(dist.device)
        trainer = GANTrainer(G, D, train, g_params=G.task_parameters(), d_params=D.task_parameters(), dist=dist,
                             g_regulariser=regulariser)
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
            on_step = self._evaluator(trainer, data_spec, eval_every, eval_n, eval_metric, history_path, log,
                                      n_classes)
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
        seconds = prior + time.perf_counter() - t0
        n_task, n_g = self.generator_param_count(n_classes, train.layout)
        meta = {"name": name, "data": data_spec,
                "classes": list(data.classes), "n_classes": n_classes, "images": len(data),
                "layout": train.layout.to_dict(),
                "resolution": self.cfg.resolution,
                "iterations": trainer.iteration, "seed": train.seed, "train": train.to_dict(),
                "seconds": round(seconds, 2),
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

    def _evaluator(self, trainer: GANTrainer, data_spec: str, every: int, n: int, metric: str,
                   history_path: Path, log: Callable[[str], None], n_classes: int = 0
                   ) -> Callable[[int, dict], None]:
        from .evaluate import Scorer
        scorer = Scorer(data_spec, self.cfg.resolution, metric, n)
        device = trainer.device

        def sample(z: torch.Tensor) -> torch.Tensor:
            # a conditional task is scored on its classes in turn, against all of its data
            y = (torch.arange(len(z)) % n_classes).to(device) if n_classes else None
            return trainer.G_ema.eval()(z.to(device), y).clamp(-1, 1).cpu()

        def on_step(it: int, _stats: dict) -> None:
            if it % every and it != trainer.cfg.iters:
                return
            res = scorer.score(sample, self.cfg.z_dim, seed=0)
            record = {"iteration": it, res["metric"]: round(res["value"], 4), "n": res["n_generated"]}
            old = history_path.read_text() if history_path.exists() else ""
            atomic_write_bytes(history_path, (old + json.dumps(record) + "\n").encode())
            log(f"iteration {it}: {res['metric']} = {res['value']:.3f} ({res['n_generated']} images)")
        return on_step

    def _plot_history(self, name: str, history: list[dict[str, Any]]) -> Path:
        from .plots import plot_curves
        metric = next(k for k in history[0] if k not in ("iteration", "n"))
        path = self.root / "plots" / f"{name}.png"
        plot_curves({name: ([h["iteration"] for h in history], [h[metric] for h in history])}, path,
                    title=f"task '{name}': {metric} against iterations ({history[-1]['n']} images)",
                    xlabel="iteration", ylabel=metric)
        return path

    def _factorise(self, G: Generator, lowrank: LowRankConfig) -> dict[str, LowRankDelta]:
        """Turn G's conv gamma / beta into start + U diag(s) V^T + R over the bank's trained
        bases; s starts at 0 (``init`` "source") or at the last low-rank task's coefficients
        ("previous")."""
        bases, bases_meta = self._bases_artifact()
        prev: dict[str, torch.Tensor] = {}
        last = bases_meta.get("lowrank_last")
        if lowrank.init == "previous" and last and self._task_path(last).exists():
            prev = unprefixed("G", load_artifact(self._task_path(last), TASK_FORMAT)[0])
        factors = {}
        for mname, mod in G.named_modules():
            if not isinstance(mod, ModulatedConv2d):
                continue
            for pname in ("gamma", "beta"):
                key = f"{mname}.{pname}"
                co, ci = getattr(mod, pname).shape
                u = bases.get(key + TRAINED_U, torch.zeros(co, 0))  # float32 [Co, K]
                v = bases.get(key + TRAINED_V, torch.zeros(ci, 0))  # float32 [Ci, K]
                s0 = torch.zeros(u.shape[1])
                old = prev.get(key + SDIAG_SUFFIX)
                if old is not None:
                    s0[: len(old)] = old.float()[: u.shape[1]]
                mod.factorise(pname, u, v, s0)
                factors[key] = mod.factors(pname)
        G.freeze_source()
        return factors

    def _write_lowrank_task(self, name: str, G_ema: Generator, basis_k: dict[str, int], lowrank: LowRankConfig,
                            meta: dict[str, Any]) -> dict[str, Any]:
        """Fold each factorised matrix's residual into the bank's bases (written first: the
        columns only grow, so every stored task stays valid) and store the coefficients.
        Returns the stored metadata."""
        bases = self.shared_bases()
        now = {key: bases[key + TRAINED_U].shape[1] if key + TRAINED_U in bases else 0 for key in basis_k}
        if now != basis_k:
            raise GanMemoryError(f"task '{name}' cannot be stored: the bank's trained bases grew while it was "
                                 "learned (another --lowrank task finished); learn it again")
        factors = {n: m for n, m in G_ema.named_modules() if isinstance(m, LowRankDelta)}
        small, added = {}, 0
        for pname, p in G_ema.task_state_dict().items():
            owner, _, leaf = pname.rpartition(".")
            if owner in factors:
                if leaf != "s":
                    continue
                key = owner.removesuffix("_lowrank")
                f = factors[owner]
                u_new, v_new, coeffs = fold_residual(f.u, f.v, f.s.detach(), f.r.detach(), lowrank.energy)
                # float32 columns, as training used them; the stored prefix is kept bit for bit
                for suffix, old, new in ((TRAINED_U, f.u, u_new), (TRAINED_V, f.v, v_new)):
                    bases[key + suffix] = torch.cat([bases.get(key + suffix, old.float()), new.float()], 1)
                added += u_new.numel() + v_new.numel()
                small[key + SDIAG_SUFFIX] = coeffs.float()
            else:
                small[pname] = p.detach().clone()
        full = meta["task_parameters"]
        meta = {**meta, "lowrank": lowrank.to_dict(),
                "compressed": {"mode": "lowrank-trained", "energy": lowrank.energy, "dtype": "float32",
                               "parameters_before": full, "basis_parameters_added": added},
                "task_parameters": stored_parameters(small) + added}
        self._save_bases(bases, lowrank_last=name)
        return write_task_file(self._task_path(name), prefixed("G", small), meta)

    def _write_task(self, name: str, trainer: GANTrainer, meta: dict[str, Any]) -> dict[str, Any]:
        tensors, opt_meta = trainer.state_tensors()
        out = {**prefixed("G", unprefixed("G_ema", tensors)), **prefixed("G_train", unprefixed("G", tensors)),
               **prefixed("D", unprefixed("D", tensors))}
        out.update({k: v for k, v in tensors.items() if k.startswith(("opt_g.", "opt_d."))})
        meta = {**meta, "optimizer": {"opt_g": opt_meta["opt_g"], "opt_d": opt_meta["opt_d"]}}
        return write_task_file(self._task_path(name), out, meta)

    def _drop_work(self, name: str) -> None:
        """Remove a task's unfinished learn (and the work folder once it is empty)."""
        work = self.root / "work" / name
        shutil.rmtree(work, ignore_errors=True)
        try:
            work.parent.rmdir()
        except OSError:  # another task's learn is still there, or none ever was
            pass

    def _clear_temporary(self, name: str) -> list[Path]:
        """Delete the temporary files an interrupted save of task ``name`` left in tasks/ (the
        caller holds the task's lock, so no write of it is under way)."""
        gone = []
        for item in self.leftovers():
            if item.task == name and item.kind == "temporary":
                item.path.unlink(missing_ok=True)
                gone.append(item.path)
        return gone

    def leftovers(self) -> list[Leftover]:
        """What interrupted writers left behind: temporary files of a cut save in tasks/, and
        unfinished learns in work/ (which ``learn --resume`` continues)."""
        out = []
        tasks = self.root / "tasks"
        for p in sorted(tasks.iterdir()) if tasks.is_dir() else []:
            m = _LEFTOVER.fullmatch(p.name)
            if m and p.is_file():
                out.append(Leftover(m.group(1), p, "temporary"))
        work = self.root / "work"
        for p in sorted(work.iterdir()) if work.is_dir() else []:
            if p.is_dir():
                out.append(Leftover(p.name, p, "unfinished"))
        return out

    def clean_leftovers(self) -> tuple[list[Leftover], list[Leftover]]:
        """Delete the temporary files of cut saves whose task nobody is writing now. Returns
        (removed, kept): kept are unfinished learns and files of a save that is under way."""
        removed, kept = [], []
        for item in self.leftovers():
            lock = TaskLock(self.root, item.task)
            if item.kind == "temporary" and _plain_name(item.task) and _try(lock):
                try:
                    item.path.unlink(missing_ok=True)
                    removed.append(item)
                finally:
                    lock.release()
            else:
                kept.append(item)
        return removed, kept

    # ------------------------------------------------------------------ bank operations

    def compress(self, names: Sequence[str] | None, energy: float, dtype: torch.dtype,
                 out: "MemoryBank | None" = None, shared: bool = False) -> list[dict[str, Any]]:
        """Store tasks in low-rank form (``compress.py``), into ``out`` (another bank over the
        same source) or, when ``out`` is None, in place. Returns one report row per task.

        ``shared``: the tasks, in the order given, grow bases shared by the target bank
        (BANK/bases.safetensors) and each keeps only its cores; a task's row counts the
        columns it added. Otherwise each matrix gets its own truncated SVD.

        Every task is checked and the target's locks are taken before anything is written."""
        if not 0 < energy <= 1:
            raise GanMemoryError(f"--energy must be in (0, 1], got {energy}")
        names = list(names) if names else self.tasks()
        target = out or self
        if target.source.file_hash != self.source.file_hash:
            raise GanMemoryError(f"bank '{target.root}' has another source; cannot hold these tasks")
        loaded = {}
        for name in names:
            tensors, meta = self.load_task(name)
            if meta.get("compressed"):
                raise GanMemoryError(f"task '{name}' is already compressed")
            if out is not None and target._task_path(name).exists():
                raise GanMemoryError(f"task '{name}' already exists in bank '{target.root}'")
            loaded[name] = (tensors, meta)
        n_g = self.generator_param_count()[1]
        rows = []
        with locked(target.root, names + ([BASES_LOCK] if shared else []), "compress"):
            for name, (tensors, meta) in loaded.items():
                rows.append(self._compress_one(name, tensors, meta, energy, dtype, target, shared, n_g))
        return rows

    def _compress_one(self, name: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any], energy: float,
                      dtype: torch.dtype, target: "MemoryBank", shared: bool, n_g: int) -> dict[str, Any]:
        before_bytes = self._task_path(name).stat().st_size
        full = unprefixed("G", tensors)
        added = 0
        if shared:
            small, bases, added = compress_shared(full, target.shared_bases(), energy, dtype)
        else:
            small = compress_state(full, energy, dtype)
        new_meta = {k: v for k, v in meta.items() if k not in ("optimizer", "tensor_hash")}
        new_meta.update({"compressed": {"mode": "shared" if shared else "per-task", "energy": energy,
                                        "dtype": str(dtype).replace("torch.", ""),
                                        "parameters_before": stored_parameters(full),
                                        "basis_parameters_added": added},
                         "task_parameters": stored_parameters(small) + added})
        if shared:  # the grown bases first: they stay valid for every task already stored
            target._save_bases(bases, energy=energy)
        path = target._task_path(name)
        write_task_file(path, prefixed("G", small), new_meta)
        return {"task": name, "parameters_before": stored_parameters(full),
                "parameters_after": stored_parameters(small) + added, "generator_parameters": n_g,
                "bytes_before": before_bytes, "bytes_after": path.stat().st_size}

    def remove(self, name: str) -> list[str]:
        """Delete task ``name``: its file, its JSON copy, its plot, an unfinished learn of it
        and the temporary files of a cut save. Returns what was removed, in words; a name
        with nothing stored is an error."""
        path = self._task_path(name)
        with locked(self.root, [name], f"remove {name}"):
            removed = []
            if path.exists():
                path.unlink()
                removed.append("task file")
            sidecar(path).unlink(missing_ok=True)
            (self.root / "plots" / f"{name}.png").unlink(missing_ok=True)
            if (self.root / "work" / name).exists():
                self._drop_work(name)
                removed.append("unfinished learn")
            if self._clear_temporary(name):
                removed.append("temporary files of a cut save")
        if not removed:
            known = ", ".join(self.tasks()) or "none yet"
            raise GanMemoryError(f"unknown task '{name}' in bank '{self.root}'; known tasks: {known}")
        return removed

    def merge(self, others: Sequence[str | os.PathLike]) -> list[str]:
        """Copy every task of the other banks into this one; nothing is copied if any task is
        damaged or clashes. Each task is checked in full before it is copied."""
        plan: list[tuple[str, Path]] = []
        names = set(self.tasks())
        for other_root in others:
            other = MemoryBank(other_root)
            if other.source.file_hash != self.source.file_hash:
                raise GanMemoryError(f"bank '{other.root}' was built on source {other.source.file_hash}, "
                                     f"this bank '{self.root}' on {self.source.file_hash}: cannot merge")
            for info in other.task_infos():
                if info.error:
                    raise GanMemoryError(f"bank '{other.root}': {info.error}")
                if info.meta.get("compressed", {}).get("mode") in ("shared", "lowrank-trained"):
                    raise GanMemoryError(f"task '{info.name}' of bank '{other.root}' is stored over that bank's "
                                         "shared bases and cannot move to another bank; only tasks stored whole can be merged")
                if info.name in names:
                    raise GanMemoryError(f"task '{info.name}' of bank '{other.root}' clashes with a task "
                                         f"of the same name; remove or rename one first")
                names.add(info.name)
                plan.append((info.name, other._task_path(info.name)))
        with locked(self.root, [n for n, _ in plan], "merge"):
            for name, src in plan:
                if self._task_path(name).exists():  # learned here since the plan was made
                    raise GanMemoryError(f"task '{name}' appeared in bank '{self.root}' during the merge; "
                                         "nothing more was copied")
            for name, src in plan:
                atomic_write_bytes(self._task_path(name), src.read_bytes())
                if sidecar(src).exists():
                    atomic_write_bytes(sidecar(self._task_path(name)), sidecar(src).read_bytes())
        return [n for n, _ in plan]

    def interpolate(self, a: str, b: str, steps: int = 8, n: int = 4, seed: int = 0, mode: str = "whole"
                    ) -> torch.Tensor:
        """Images along the path from task ``a`` to task ``b``: [n * steps, 3, R, R], row-major
        (one row per latent, one column per step).

        ``whole``: every parameter moves together, theta = (1 - t) theta_a + t theta_b.
        ``blocks``: the Linear, then each block in turn, then the output layers move from a to b,
        as the paper shows.
        Between conditional tasks (same class count) row i draws class index i % n_classes of
        both, as ``sample`` does.
        """
        if mode not in ("whole", "blocks"):
            raise GanMemoryError(f"interpolation mode '{mode}' is unknown: use whole or blocks")
        if steps < 2:
            raise GanMemoryError(f"--steps must be >= 2, got {steps}")
        ta = unprefixed("G", self.load_task(a)[0])
        tb = unprefixed("G", self.load_task(b)[0])
        if set(ta) != set(tb) or any(ta[k].shape != tb[k].shape for k in ta):
            raise GanMemoryError(f"tasks '{a}' and '{b}' have different parameters (other class counts "
                                 "or other task layouts); cannot interpolate between them")
        G = self._modulated_generator(*self._kind(a))
        # the class bias moves with the Linear it shifts; an owned output conv and colour come last
        group_of = {"class_bias": "fc", "conv_img": "output", "colour": "output"}
        groups = ["fc"] + [f"resnet_{i}_0" for i in range(self.cfg.n_blocks)]
        if any(group_of.get(key.split(".")[0]) == "output" for key in ta):
            groups.append("output")
        z = latents(n, self.cfg.z_dim, seed)
        y = self.class_indices(a, None, n)  # None for unconditional tasks
        cols = []
        for s in range(steps):
            t = s / (steps - 1)
            state = {}
            for key in ta:
                if mode == "whole":
                    w = t
                else:
                    head = key.split(".")[0]
                    g = groups.index(group_of.get(head, head))
                    w = min(1.0, max(0.0, t * len(groups) - g))
                state[key] = torch.lerp(ta[key], tb[key], w)
            G.load_task_state(state)
            cols.append(generate(G, z, y))
        return torch.stack(cols, 1).reshape(n * steps, *cols[0].shape[1:])


def _penalty(lowrank: LowRankConfig, coeffs: list[torch.Tensor]) -> Callable[[int], torch.Tensor | None]:
    """The generator's extra loss under ``--lowrank``: the weighted singular-value penalty on
    the trained coefficients ``coeffs``, on every ``penalty_every``-th step (docs/method.md, section 4)."""
    def regulariser(it: int) -> torch.Tensor | None:
        if lowrank.penalty == 0 or it % lowrank.penalty_every or not coeffs:
            return None
        return lowrank.penalty * sum(singular_value_penalty(s) for s in coeffs)
    return regulariser


def _plain_name(name: str) -> bool:
    try:
        check_task_name(name)
    except GanMemoryError:
        return False
    return True


def _try(lock: TaskLock) -> bool:
    """Take ``lock`` if it is free; False also where the bank cannot be written (read-only)."""
    try:
        return lock.try_acquire("list")
    except OSError:
        return False
