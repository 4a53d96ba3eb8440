"""Class-incremental task sequences: which classes each task holds, and their global labels.

A task is a group of classes of one labelled built-in dataset; tasks never share a class. Every
(dataset, class) pair gets a global id in order of first appearance over the sequence, so one
classifier head with C outputs (C = all classes of the sequence) covers every task, and after
task t the classes seen so far are exactly the global ids 0 .. (classes in tasks 0..t) - 1.

Task strings (``parse_tasks``)::

    TASKS := ITEM (";" ITEM)*
    ITEM  := SPEC | "split:" NAME ":" K

``SPEC`` is a data spec of a built-in dataset with train and test splits (``mnist:0,1``,
``fashion-mnist:bag,boot``); it trains on the spec's train split and tests on the same classes'
``@test`` split. ``split:NAME:K`` cuts NAME's classes, in class order, into K consecutive groups of
near-equal size: with C classes, the first C mod K groups get one class more (``split:mnist:5``
gives 0,1 / 2,3 / ... / 8,9; ``split:mnist:3`` gives 0-3 / 4-6 / 7-9).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..data import BUILTINS, DataSpec, load_data, parse_spec
from ..data import _resolve_classes  # the class-name rules of load_data, so names match it exactly
from ..data.builtin import class_names
from ..errors import GanMemoryError

BENCHMARKS: dict[str, str] = {
    "split-mnist": "split:mnist:5",  # van de Ven et al.'s Split-MNIST, class-incremental
    "split-fashion-mnist": "split:fashion-mnist:5",
}


@dataclass(frozen=True)
class ClassTask:
    """One task: a group of classes of one built-in dataset."""

    name: str  # the train spec, e.g. "mnist:0,1"
    train_spec: str  # data spec of the training images, e.g. "mnist:0,1" (the default train split)
    test_spec: str  # the same classes' test images, e.g. "mnist:0,1@test"
    classes: tuple[str, ...]  # class names as the dataset spells them
    global_ids: tuple[int, ...]  # global label of each class, same order as ``classes``

    @property
    def dataset(self) -> str:
        return parse_spec(self.train_spec).name

    def to_dict(self) -> dict:
        d = asdict(self)
        d["classes"], d["global_ids"] = list(self.classes), list(self.global_ids)
        return d


@dataclass
class TaskData:
    """A task's images in memory; labels are GLOBAL ids (see ``ClassTask.global_ids``)."""

    train_images: np.ndarray  # uint8 [N, R, R, 3]
    train_labels: np.ndarray  # int64 [N]
    test_images: np.ndarray  # uint8 [M, R, R, 3]
    test_labels: np.ndarray  # int64 [M]


def n_classes(tasks: list[ClassTask]) -> int:
    """C, the classifier's outputs: every class of the sequence."""
    return sum(len(t.classes) for t in tasks)


def _with_test_split() -> str:
    return ", ".join(n for n, b in BUILTINS.items() if "train" in b.splits and "test" in b.splits)


def _check_splits(name: str, item: str) -> None:
    splits = BUILTINS[name].splits
    if "train" not in splits or "test" not in splits:
        raise GanMemoryError(f"task '{item}': {name} has no train/test splits (only {', '.join(splits)}); "
                             f"use a dataset with a test split: {_with_test_split()}")


def _split_groups(item: str) -> list[tuple[str, tuple[str, ...]]]:
    """``split:NAME:K`` -> K (dataset, classes) groups, consecutive and near-equal in size."""
    parts = item.split(":")
    if len(parts) != 3 or not parts[1] or not parts[2]:
        raise GanMemoryError(f"task '{item}': write a split as split:NAME:K, e.g. split:mnist:5")
    name, k_text = parts[1], parts[2]
    if name not in BUILTINS:
        raise GanMemoryError(f"task '{item}': '{name}' is not a built-in dataset; known: {', '.join(BUILTINS)}")
    _check_splits(name, item)
    try:
        k = int(k_text)
    except ValueError:
        raise GanMemoryError(f"task '{item}': K must be a whole number, got '{k_text}'") from None
    names = class_names(name)
    if not 1 <= k <= len(names):
        raise GanMemoryError(f"task '{item}': K must be between 1 and the {len(names)} classes of {name}, got {k}")
    return [(name, tuple(str(c) for c in group)) for group in np.array_split(np.array(names, dtype=object), k)]


def _spec_group(item: str) -> tuple[str, tuple[str, ...]]:
    """A data spec -> (dataset, canonical class names); rejects folders, test splits and
    datasets without a test split."""
    ds = parse_spec(item)
    if ds.kind == "folder":
        raise GanMemoryError(f"task '{item}' is an image folder: lifelong classification needs labelled "
                             f"classes with a test split, i.e. a built-in dataset ({_with_test_split()})")
    _check_splits(ds.name, item)
    if ds.split not in (None, "train"):
        raise GanMemoryError(f"task '{item}': a task trains on the train split and tests on @test; "
                             f"drop '@{ds.split}'")
    return ds.name, _resolve_classes(ds.name, ds.classes, item)


def parse_tasks(tasks: str | None, benchmark: str | None = None) -> list[ClassTask]:
    """The task sequence given by a task string (module docstring) or a named benchmark
    (``BENCHMARKS``); exactly one of the two. Raises :class:`GanMemoryError` for malformed items,
    unlabelled folders, datasets without a test split, and tasks that share a class."""
    if (tasks is None) == (benchmark is None):
        raise GanMemoryError("give either --tasks or --benchmark (exactly one)")
    if benchmark is not None:
        if benchmark not in BENCHMARKS:
            raise GanMemoryError(f"unknown benchmark '{benchmark}'; known: {', '.join(BENCHMARKS)}")
        tasks = BENCHMARKS[benchmark]
    items = [s.strip() for s in tasks.split(";")]
    if not any(items):
        raise GanMemoryError("--tasks is empty: give at least one task, e.g. 'mnist:0,1;mnist:2,3'")
    if not all(items):
        raise GanMemoryError(f"--tasks '{tasks}' has an empty task between ';'")
    groups: list[tuple[str, tuple[str, ...]]] = []
    for item in items:
        groups.extend(_split_groups(item) if item.startswith("split:") else [_spec_group(item)])

    out: list[ClassTask] = []
    owner: dict[tuple[str, str], str] = {}  # (dataset, class) -> the task that holds it
    for i, (name, classes) in enumerate(groups):
        spec = str(DataSpec("builtin", name, classes))
        label = f"task {i + 1} ({spec})"
        for c in classes:
            if (name, c) in owner:
                raise GanMemoryError(f"{owner[(name, c)]} and {label} share class '{c}' of {name}; "
                                     "class-incremental tasks must hold disjoint classes")
            owner[(name, c)] = label
        first = n_classes(out)
        out.append(ClassTask(spec, spec, str(DataSpec("builtin", name, classes, "test")), classes,
                             tuple(range(first, first + len(classes)))))
    return out


def _global_labels(task: ClassTask, spec: str, classes: tuple[str, ...], labels: np.ndarray) -> np.ndarray:
    if set(classes) != set(task.classes):
        raise GanMemoryError(f"data spec '{spec}' holds classes {', '.join(classes)}, "
                             f"not the task's {', '.join(task.classes)}")
    lut = np.array([task.global_ids[task.classes.index(c)] for c in classes], dtype=np.int64)
    return lut[labels]  # [N], global ids


def load_task_data(task: ClassTask, resolution: int) -> TaskData:
    """The task's train and test images at ``resolution`` px, labelled by global id."""
    train = load_data(task.train_spec, resolution)
    test = load_data(task.test_spec, resolution)
    return TaskData(train.images, _global_labels(task, task.train_spec, train.classes, train.labels),
                    test.images, _global_labels(task, task.test_spec, test.classes, test.labels))
