"""The lifelong-classification loop (docs/method.md, section 6): tasks in order, one classifier, a strategy.

Per task: load its data, ``strategy.before_task``, ``cfg.iters`` Adam steps, evaluation on every
seen task, ``strategy.after_task``. Results go to OUT/results.json, OUT/table.md and
OUT/accuracy.png, rewritten (atomically) after every task so that a crash keeps the finished tasks.
The classifier after the last finished task, with the strategy's state and the results so far,
is OUT/classifier.safetensors, also rewritten after every task: ``resume=True`` continues an
unfinished run from it, and the resumed run computes what the uninterrupted one would have
(every draw is a pure function of the seed, the task and the step).
"""

from __future__ import annotations

import inspect
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..atomic import atomic_write_bytes, atomic_write_json
from ..errors import GanMemoryError
from ..plots import plot_curves
from ..store import load_artifact, prefixed, read_meta, save_artifact, unprefixed
from .classifier import Classifier
from .config import LifelongConfig, with_added_options
from .metrics import accuracy_row, average_accuracy, average_forgetting, pooled_accuracy
from .strategies import Strategy, get_strategy
from .tasks import ClassTask, load_task_data, n_classes
from .training import train_task

RESULTS_FORMAT = "ganmemory-lifelong-results"
RESULTS_VERSION = 1
CHECKPOINT = "classifier.safetensors"  # in OUT: the classifier after the last finished task
CHECKPOINT_FORMAT = "ganmemory-lifelong-classifier"


def make_strategy(name: str, cfg: LifelongConfig, out: Path, log: Callable[[str], None],
                  strategy_kwargs: dict[str, Any] | None = None) -> Strategy:
    """Build strategy ``name``; options it does not take are a :class:`GanMemoryError`."""
    cls = get_strategy(name)
    kwargs = dict(strategy_kwargs or {})
    try:
        inspect.signature(cls).bind(cfg, out, log, **kwargs)
    except TypeError as exc:
        raise GanMemoryError(f"strategy '{name}' does not take the option(s) {', '.join(sorted(kwargs))} "
                             f"({exc})") from None
    return cls(cfg, out, log, **kwargs)


def _table(results: dict) -> str:
    tasks, matrix = results["tasks"], results["accuracy_matrix"]
    names = [f"{j + 1}: {t['name']}" for j, t in enumerate(tasks)]
    lines = [f"# Lifelong classification: {results['strategy']}", "",
             f"Accuracy (%) on each task's test set after training task i; class-incremental, so every "
             f"prediction is the argmax over all {results['n_classes']} outputs. \"average\" is the mean "
             "over the seen tasks, \"seen classes\" the accuracy on the union of their test sets.", "",
             "| after task | " + " | ".join(names) + " | average | seen classes |",
             "|---" * (len(names) + 3) + "|"]
    for i, row in enumerate(matrix):
        cells = [f"{100 * a:.1f}" for a in row] + [""] * (len(names) - len(row))
        lines.append(f"| {names[i]} | " + " | ".join(cells) +
                     f" | {100 * results['average_accuracy'][i]:.1f} | {100 * results['seen_class_accuracy'][i]:.1f} |")
    forgetting = results["average_forgetting"]
    forgetting_text = "n/a (one task)" if forgetting is None else f"{100 * forgetting:.1f} points"
    lines += ["", f"Average forgetting: {forgetting_text}",
              f"Tasks finished: {len(matrix)} of {len(tasks)}; {results['seconds_total']:.0f} s", ""]
    return "\n".join(lines)


def _plot(results: dict, path: Path) -> None:
    matrix = results["accuracy_matrix"]
    steps = list(range(1, len(matrix) + 1))
    curves = {"average over seen tasks": (steps, [100 * a for a in results["average_accuracy"]])}
    for j, task in enumerate(results["tasks"][:len(matrix)]):
        curves[f"task {j + 1}: {task['name']}"] = (steps[j:], [100 * matrix[i][j] for i in range(j, len(matrix))])
    plot_curves(curves, path, title=f"{results['strategy']}: accuracy after each task",
                xlabel="after training task", ylabel="accuracy (%)")


def write_outputs(out: Path, results: dict) -> None:
    """results.json, table.md and accuracy.png, each written atomically."""
    atomic_write_json(out / "results.json", results)
    atomic_write_bytes(out / "table.md", _table(results).encode())
    _plot(results, out / "accuracy.png")


def save_checkpoint(out: Path, model: Classifier, strategy: Strategy, results: dict) -> None:
    """OUT/classifier.safetensors: the classifier's and the strategy's tensors, the results so far."""
    tensors = {**prefixed("model", model.state_dict()), **prefixed("strategy", strategy.state_dict())}
    save_artifact(out / CHECKPOINT, tensors, {"format": CHECKPOINT_FORMAT, "version": 1, "results": results,
                                              "strategy_options": strategy.options()})


def _saved_run(out: Path, resume: bool) -> dict[str, Any] | None:
    """The header of OUT's checkpoint when resuming; None for a fresh run.

    A fresh run refuses a folder holding an unfinished run (it would overwrite it); resuming
    needs an unfinished one."""
    path = out / CHECKPOINT
    if not path.exists():
        if resume:
            raise GanMemoryError(f"--resume given but '{out}' has no lifelong run to continue (no {CHECKPOINT})")
        return None
    meta = read_meta(path)
    results = meta.get("results") or {}
    done, total = len(results.get("seconds_per_task", [])), len(results.get("tasks", []))
    if not resume:
        if meta.get("format") == CHECKPOINT_FORMAT and not results.get("complete", True):
            raise GanMemoryError(f"'{out}' holds an unfinished lifelong run ({done} of {total} tasks done): "
                                 "pass --resume to continue it, or give another --out")
        return None
    if meta.get("format") != CHECKPOINT_FORMAT or "seconds_per_task" not in results:
        raise GanMemoryError(f"file '{path}' is not a lifelong run's checkpoint")
    if results.get("complete"):
        raise GanMemoryError(f"the lifelong run in '{out}' is already complete ({total} tasks); nothing to resume")
    return meta


def _check_same_run(out: Path, meta: dict[str, Any], strategy: Strategy, expect: dict[str, Any]) -> None:
    """A resumed run must have the tasks, strategy, options and config it was started with."""
    results = meta["results"]
    config = results.get("config")
    saved = {"strategy": results.get("strategy"), "tasks": results.get("tasks"),
             "config": with_added_options(config) if isinstance(config, dict) else config,
             "strategy options": strategy.stored_options(meta.get("strategy_options"))}
    for key, want in expect.items():
        have, want = saved[key], json.loads(json.dumps(want))
        if have == want:
            continue
        if isinstance(have, dict) and isinstance(want, dict):  # name only the fields that differ
            fields = sorted(k for k in have.keys() | want.keys() if have.get(k) != want.get(k))
            have, want = ({k: d.get(k) for k in fields} for d in (have, want))
        raise GanMemoryError(f"cannot resume '{out}': it was started with {key} {json.dumps(have)}, "
                             f"not {json.dumps(want)}")


def _new_results(strategy_name: str, cfg: LifelongConfig, tasks: list[ClassTask], model: Classifier
                 ) -> dict[str, Any]:
    """The results of a run before its first task (``run_lifelong`` lists the keys)."""
    return {
        "format": RESULTS_FORMAT, "version": RESULTS_VERSION, "strategy": strategy_name,
        "config": cfg.to_dict(), "tasks": [t.to_dict() for t in tasks], "n_classes": n_classes(tasks),
        "classifier": {**model.config(), "parameters": model.n_parameters(),
                       "trainable_parameters": model.n_parameters(trainable_only=True)},
        "accuracy_matrix": [], "average_accuracy": [], "seen_class_accuracy": [],
        "final_average_accuracy": None, "final_seen_class_accuracy": None, "average_forgetting": None,
        "seconds_per_task": [], "seconds_total": 0.0, "last_loss": [], "complete": False,
        "strategy_summary": {},
    }


def _record(results: dict[str, Any], row: list[float], loss: float, sizes: list[int]) -> None:
    """Add a finished task's accuracy ``row`` (on every task seen; ``sizes``: their test images)."""
    results["accuracy_matrix"].append(row)
    results["average_accuracy"].append(average_accuracy(row))
    results["seen_class_accuracy"].append(pooled_accuracy(row, sizes))
    results["last_loss"].append(loss)
    forgetting = average_forgetting(results["accuracy_matrix"])
    results["average_forgetting"] = None if math.isnan(forgetting) else forgetting
    results["final_average_accuracy"] = results["average_accuracy"][-1]
    results["final_seen_class_accuracy"] = results["seen_class_accuracy"][-1]


def run_lifelong(tasks: list[ClassTask], strategy_name: str, cfg: LifelongConfig, out: str | Path,
                 progress: bool = True, log: Callable[[str], None] = print,
                 strategy_kwargs: dict[str, Any] | None = None, device: str | torch.device = "cpu",
                 resume: bool = False) -> dict:
    """Learn ``tasks`` in order with strategy ``strategy_name``; return (and write) the results.

    Args:
        tasks: the sequence, from :func:`ganmemory.lifelong.parse_tasks`.
        strategy_name: a key of ``ganmemory.lifelong.strategies.STRATEGIES``.
        cfg: the run's options; ``cfg.seed`` seeds the classifier's initialisation
            (``torch.manual_seed``), the batch order and every draw, task by task.
        out: folder for results.json, table.md, accuracy.png (and the strategy's own files).
        progress: show a tqdm bar per task.
        log: prints one line per finished task (and the strategy's messages).
        strategy_kwargs: extra keyword arguments of the strategy's constructor.
        device: torch device of the classifier.
        resume: continue the unfinished run in ``out`` (OUT/classifier.safetensors) after its
            last finished task; it must have the same tasks, strategy, options and config.
            Without it, a folder holding an unfinished run is an error.

    One classifier with a single head over C = all classes of the sequence (class-incremental)
    learns the tasks one after another; the optimizer is re-created per task (``train_task``).
    results.json holds: format, version, strategy, config, tasks, n_classes, classifier (its
    constructor arguments and parameter counts), accuracy_matrix (ragged rows: row i holds the
    accuracy on tasks 0..i after task i), average_accuracy and seen_class_accuracy (one per
    finished task), final_average_accuracy, final_seen_class_accuracy, average_forgetting (None
    for one task), seconds_per_task, seconds_total, last_loss, complete, strategy_summary.
    """
    if not tasks:
        raise GanMemoryError("no tasks to learn: give at least one")
    out = Path(out)
    saved = _saved_run(out, resume)
    if saved is not None:
        cfg = cfg.continuing(saved["results"].get("config"))
    out.mkdir(parents=True, exist_ok=True)
    strategy = make_strategy(strategy_name, cfg, out, log, strategy_kwargs)
    if saved is not None:
        strategy.continuing(saved.get("strategy_options"))
        _check_same_run(out, saved, strategy, {"strategy": strategy_name, "tasks": [t.to_dict() for t in tasks],
                                     "config": cfg.to_dict(), "strategy options": strategy.options()})
    torch.manual_seed(cfg.seed)
    model = Classifier(n_classes(tasks), cfg.classifier, cfg.resolution).to(device)
    results = _new_results(strategy_name, cfg, tasks, model)
    test_sets: list[tuple[np.ndarray, np.ndarray]] = []  # (uint8 [M, R, R, 3], int64 [M]) per seen task
    start = 0
    if saved is not None:
        tensors, _ = load_artifact(out / CHECKPOINT, CHECKPOINT_FORMAT)
        results = saved["results"]
        start = len(results["seconds_per_task"])
        model.load_state_dict(unprefixed("model", tensors))
        done = [(task, load_task_data(task, cfg.resolution)) for task in tasks[:start]]
        test_sets = [(data.test_images, data.test_labels) for _, data in done]
        strategy.restore(done, {k: v.to(device) for k, v in unprefixed("strategy", tensors).items()})
        log(f"resuming '{out}' after task {start} of {len(tasks)}")
    t_start = time.perf_counter() - results["seconds_total"]
    for index, task in enumerate(tasks[start:], start):
        t0 = time.perf_counter()
        data = load_task_data(task, cfg.resolution)
        test_sets.append((data.test_images, data.test_labels))
        strategy.before_task(model, index, task, data, tasks[:index])
        images, labels = strategy.train_arrays(index, task, data)
        loss = train_task(model, images, labels, strategy, cfg, index,
                          f"task {index + 1}/{len(tasks)} {task.name} [{strategy_name}]", progress)

        row = accuracy_row(model, test_sets)
        _record(results, row, loss, [len(y) for _, y in test_sets])
        results["seconds_total"] = time.perf_counter() - t_start
        write_outputs(out, results)  # before after_task, which may train a GAN for hours
        log(f"task {index + 1}/{len(tasks)} {task.name} [{strategy_name}]: accuracy on seen classes "
            f"{results['seen_class_accuracy'][-1]:.3f}, per task " + " ".join(f"{a:.3f}" for a in row))

        strategy.after_task(model, index, task, data)
        results["seconds_per_task"].append(time.perf_counter() - t0)
        results["seconds_total"] = time.perf_counter() - t_start
        results["complete"] = index == len(tasks) - 1
        results["strategy_summary"] = strategy.summary()
        save_checkpoint(out, model, strategy, results)  # first: a stop between the two resumes from here
        write_outputs(out, results)
    return results
