"""The bank on disk: its folder, the source, task files and their checks, the shared bases,
removal, merging, and what interrupted writers leave behind (the layout: ``ganmemory.memory``)."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, Sequence

import torch

from ..atomic import atomic_write_bytes, atomic_write_json
from ..compress import (CHANGE, MATRIX, OVER_BANK_BASES, PER_TASK, SHARED, TRAINED, expand_shared, expand_state,
                        expand_trained)
from ..errors import GanMemoryError
from ..locks import TaskLock, locked
from ..nets import PAPER_LAYOUT, Discriminator, Generator, TaskLayout
from ..source import Source, default_source_path
from ..store import check_complete, load_artifact, load_checked, prefixed, read_meta, save_artifact, unprefixed
from ..taskfile import (check_shapes, check_task_meta, check_task_name, check_task_tensors, sidecar,
                        task_file, task_layout, write_task_file)
from ..train import GANTrainer

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



class BankDisk:
    """A bank's files over one frozen source: opening and creating a bank, reading and checking
    tasks, the modulated generators tasks are loaded into, removal, merging and leftovers."""

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

    @classmethod
    def create(cls, root: str | os.PathLike, source_path: str | os.PathLike | None = None) -> "Self":
        root = Path(root)
        if (root / "bank.json").exists():
            raise GanMemoryError(f"'{root}' is already a memory bank; choose another --out")
        if root.exists() and any(root.iterdir()):
            raise GanMemoryError(f"'{root}' exists and is not empty; choose another --out")
        src = Source.load(source_path)  # validates the file before anything is written
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
            mode = compressed.get("mode", PER_TASK) if compressed else None
            # factors of the change from the start, or (files before "of") of the matrix itself
            of_change = bool(compressed) and compressed.get("of", MATRIX) == CHANGE
            starts = self.task_start(meta["n_classes"], task_layout(meta)) if of_change or mode == TRAINED else None
            if mode == SHARED:  # cores over the bank's bases
                tensors = prefixed("G", expand_shared(unprefixed("G", tensors), self.shared_bases(), starts))
            elif mode == TRAINED:  # coefficients over the bank's trained bases
                tensors = prefixed("G", expand_trained(unprefixed("G", tensors), self.shared_bases(), starts))
            elif mode == PER_TASK:  # low-rank factors -> full matrices, transparently
                tensors = prefixed("G", expand_state(unprefixed("G", tensors), starts))
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

    def _write_task(self, name: str, trainer: GANTrainer, meta: dict[str, Any]) -> dict[str, Any]:
        tensors, opt_meta = trainer.state_tensors()
        out = {**prefixed("G", unprefixed("G_ema", tensors)), **prefixed("G_train", unprefixed("G", tensors)),
               **prefixed("D", unprefixed("D", tensors))}
        out.update({k: v for k, v in tensors.items() if k.startswith(("opt_g.", "opt_d."))})
        meta = {**meta, "optimizer": {"opt_g": opt_meta["opt_g"], "opt_d": opt_meta["opt_d"]}}
        return write_task_file(self._task_path(name), out, meta)

    def _grid_dir(self, name: str) -> Path:
        """Where ``learn --eval-every`` keeps a sample grid beside each score."""
        return self.root / "plots" / name

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
            shutil.rmtree(self._grid_dir(name), ignore_errors=True)
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
            other = type(self)(other_root)
            if other.source.file_hash != self.source.file_hash:
                raise GanMemoryError(f"bank '{other.root}' was built on source {other.source.file_hash}, "
                                     f"this bank '{self.root}' on {self.source.file_hash}: cannot merge")
            for info in other.task_infos():
                if info.error:
                    raise GanMemoryError(f"bank '{other.root}': {info.error}")
                if info.meta.get("compressed", {}).get("mode") in OVER_BANK_BASES:
                    raise GanMemoryError(f"task '{info.name}' of bank '{other.root}' is stored over that bank's "
                                         "shared bases and cannot move to another bank; only tasks stored whole "
                                         "can be merged")
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
