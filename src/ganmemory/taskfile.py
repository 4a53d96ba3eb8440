"""Task files on disk: their names, their header's schema, the hash of their tensors, and the
checks every task passes before anything is built from it.

A task is ``BANK/tasks/NAME.safetensors`` (the tensors, with the metadata in the header) plus
``NAME.json`` (the same metadata for people and tools). Three rules keep a bank safe from bad
or hostile input:

- a task name is a plain identifier, never a path (:func:`task_file`);
- the header is checked against a schema (types, ranges, sizes) before anything is allocated
  from it (:func:`check_task_meta`);
- the tensors must match the hash the header carries, be finite floating-point tensors, and
  have exactly the names and shapes the bank's networks expect (:func:`check_task_tensors`).

Any fault raises one :class:`GanMemoryError` that names the task, the file and the fault.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from .atomic import atomic_write_json
from .compress import FACTORED, MATRIX, MODES, PER_TASK
from .errors import GanMemoryError
from .nets import PAPER_LAYOUT, TaskLayout
from .store import save_artifact, tensors_hash

TASK_FORMAT = "ganmemory-task"
TASK_VERSION = 2  # 2: the header carries ``tensor_hash``; version 1 files (without it) still load
READABLE_VERSIONS = (1, 2)
MAX_CLASSES = 1_000  # classes of one conditional task (ImageNet's count)
MAX_NAME_CHARS = 256  # a class name, a data spec
# tensor groups a task file may hold: the EMA generator (what sampling uses) and, for a task
# stored whole, the trained generator, the discriminator and both optimizers (to learn further)
TASK_GROUPS = ("G", "G_train", "D", "opt_g", "opt_d")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")
_HASH = re.compile(r"[0-9a-f]{16}")


def check_task_name(name: Any) -> str:
    """``name`` if it is a plain task name: letters, digits, '_', '-', '.', '+', at most 64,
    starting with a letter or digit. It can hold no path separator and cannot be '..'."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise GanMemoryError(f"task name '{name}' is not allowed: use letters, digits, '_', '-', '.', '+' "
                             "(at most 64, starting with a letter or digit); a task name is never a path")
    return name


def task_file(tasks_dir: Path, name: str) -> Path:
    """The one place a task name becomes a path: ``tasks_dir/NAME.safetensors``, which must lie
    inside ``tasks_dir`` once links are resolved."""
    path = tasks_dir / f"{check_task_name(name)}.safetensors"
    if path.is_symlink() and path.resolve().parent != tasks_dir.resolve():
        raise GanMemoryError(f"task '{name}': '{path}' links outside the bank ({path.resolve()}); refusing to use it")
    return path


def sidecar(path: Path) -> Path:
    """The JSON copy of a task file's metadata."""
    return path.with_suffix(".json")


# ------------------------------------------------------------------------------- writing

def write_task_file(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Write a task atomically with the hash of its tensors in its header, then its JSON copy
    (without the optimizer's hyperparameters). Returns the metadata as stored."""
    flat = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    meta = {**meta, "format": TASK_FORMAT, "format_version": TASK_VERSION, "tensor_hash": tensors_hash(flat)}
    save_artifact(path, flat, meta)
    atomic_write_json(sidecar(path), {k: v for k, v in meta.items() if k != "optimizer"})
    return meta


# ------------------------------------------------------------------------------- the header

def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and v == v and abs(v) != float("inf")


def _short_str(v: Any) -> bool:
    return isinstance(v, str) and len(v) <= MAX_NAME_CHARS


# field -> (what it must be, the check); a field not listed here is kept but never used
_SCHEMA: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "format": ("the string 'ganmemory-task'", lambda v: v == TASK_FORMAT),
    "format_version": (f"one of {READABLE_VERSIONS}", lambda v: _is_int(v) and v in READABLE_VERSIONS),
    "name": ("a task name", lambda v: isinstance(v, str) and bool(_NAME.fullmatch(v))),
    "data": ("a data spec (a string)", _short_str),
    "classes": (f"a list of at most {MAX_CLASSES:,} class names",
                lambda v: isinstance(v, list) and len(v) <= MAX_CLASSES and all(_short_str(c) for c in v)),
    "n_classes": (f"a whole number in [0, {MAX_CLASSES:,}]", lambda v: _is_int(v) and 0 <= v <= MAX_CLASSES),
    "images": ("a whole number >= 0", lambda v: _is_int(v) and v >= 0),
    "resolution": ("a whole number", _is_int),
    "iterations": ("a whole number >= 0", lambda v: _is_int(v) and v >= 0),
    "seed": ("a whole number", _is_int),
    "train": ("an object", lambda v: isinstance(v, dict)),
    "seconds": ("a number >= 0", lambda v: _is_number(v) and v >= 0),
    "seconds_per_iteration": ("a number >= 0", lambda v: _is_number(v) and v >= 0),
    "metrics": ("a list of objects", lambda v: isinstance(v, list) and all(isinstance(m, dict) for m in v)),
    "source_hash": ("a source hash (a string)", _short_str),
    "task_parameters": ("a whole number >= 0", lambda v: _is_int(v) and v >= 0),
    "generator_parameters": ("a whole number >= 0", lambda v: _is_int(v) and v >= 0),
    "created": ("a date (a string)", _short_str),
    "processes": ("a whole number >= 1", lambda v: _is_int(v) and v >= 1),
    "last": ("an object", lambda v: isinstance(v, dict)),
    "optimizer": ("an object", lambda v: isinstance(v, dict)),
    "lowrank": ("an object", lambda v: isinstance(v, dict)),
    "compressed": ("an object with a known mode, a known 'of' and an energy or a budget in (0, 1]",
                   lambda v: isinstance(v, dict) and v.get("mode", PER_TASK) in MODES
                   and v.get("of", MATRIX) in FACTORED
                   and any(_is_number(v.get(k)) and 0 < v[k] <= 1 for k in ("energy", "budget"))),
    "tensor_hash": ("16 hexadecimal digits", lambda v: isinstance(v, str) and bool(_HASH.fullmatch(v))),
    "layout": ("an object of task-layout options", lambda v: isinstance(v, dict) and _layout_ok(v)),
}
_REQUIRED = ("format", "format_version", "n_classes", "resolution", "source_hash")


def check_task_meta(meta: Any, path: Path, resolution: int, source_hash: str) -> dict[str, Any]:
    """``meta`` if it is a valid task header for a bank at ``resolution`` over the source
    ``source_hash``; otherwise one error naming the file and the first field at fault."""
    task = path.name.removesuffix(".safetensors")
    if not isinstance(meta, dict):
        raise GanMemoryError(f"task '{task}' ('{path}') is corrupted: its header is a {type(meta).__name__}, "
                             "not an object")
    for key in _REQUIRED:
        if key not in meta:
            raise GanMemoryError(f"task '{task}' ('{path}') is corrupted: its header has no '{key}'")
    for key, (what, ok) in _SCHEMA.items():
        if key in meta and not ok(meta[key]):
            raise GanMemoryError(f"task '{task}' ('{path}') is corrupted: its header's '{key}' must be {what}, "
                                 f"not {_shown(meta[key])}")
    if meta["format_version"] >= 2 and "tensor_hash" not in meta:
        raise GanMemoryError(f"task '{task}' ('{path}') is corrupted: its header has no 'tensor_hash'")
    n = meta["n_classes"]
    if n and len(meta.get("classes", [])) != n:
        raise GanMemoryError(f"task '{task}' ('{path}') is corrupted: its header says {n} classes but names "
                             f"{len(meta.get('classes', []))}")
    if meta["resolution"] != resolution:
        raise GanMemoryError(f"task '{task}' ('{path}') is for {meta['resolution']} px, but this bank's "
                             f"source is {resolution} px")
    if meta["source_hash"] != source_hash:
        raise GanMemoryError(f"task file '{path}' was learned from source {meta['source_hash']}, "
                             f"not this bank's {source_hash}")
    return meta


def _layout_ok(d: dict) -> bool:
    try:
        TaskLayout.from_dict(d)
    except GanMemoryError:
        return False
    return True


def task_layout(meta: dict[str, Any]) -> TaskLayout:
    """The parameters a task owns (``nets.TaskLayout``); files without the field have the paper's."""
    return TaskLayout.from_dict(meta["layout"]) if "layout" in meta else PAPER_LAYOUT


def _shown(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


# ------------------------------------------------------------------------------- the tensors

def check_task_tensors(path: Path, tensors: Mapping[str, torch.Tensor], meta: dict[str, Any], digest: str,
                       non_finite: str | None) -> None:
    """The stored tensors are the ones the header's hash describes, and each is a finite
    floating-point tensor of a known group. ``digest`` and ``non_finite`` come from
    ``store.load_checked``, which computes them while reading the file."""
    task = path.name.removesuffix(".safetensors")
    where = f"task '{task}' ('{path}') is corrupted"
    for name, t in tensors.items():
        if name.split(".", 1)[0] not in TASK_GROUPS:
            raise GanMemoryError(f"{where}: it holds a tensor '{name}' that no task has")
        if not t.is_floating_point():
            raise GanMemoryError(f"{where}: tensor '{name}' is {str(t.dtype).replace('torch.', '')}, "
                                 "not floating point")
    if "tensor_hash" in meta and digest != meta["tensor_hash"]:
        raise GanMemoryError(f"{where}: its tensors do not match the hash in its header (changed or damaged "
                             "after it was written)")
    if non_finite is not None:
        raise GanMemoryError(f"{where}: tensor '{non_finite}' holds values that are not finite (NaN or inf)")


def check_shapes(path: Path, group: str, state: Mapping[str, torch.Tensor],
                 expected: Mapping[str, torch.Size]) -> None:
    """``state`` (one group's tensors, compressed forms expanded) has exactly the names and
    shapes the bank's network expects."""
    task = path.name.removesuffix(".safetensors")
    where = f"task '{task}' ('{path}') does not fit this bank's networks"
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing:
        raise GanMemoryError(f"{where}: {group} tensor '{missing[0]}' is missing"
                             + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    if extra:
        raise GanMemoryError(f"{where}: {group} tensor '{extra[0]}' is not a parameter of the network"
                             + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""))
    for name, shape in expected.items():
        if tuple(state[name].shape) != tuple(shape):
            raise GanMemoryError(f"{where}: {group} tensor '{name}' has shape {list(state[name].shape)}, "
                                 f"the network needs {list(shape)}")
