"""``ganmemory demo``: learn three real domains one after another and show nothing is forgotten."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path
from typing import Callable

import torch

from .atomic import atomic_write_json
from .budget import iterations_for, seconds_per_step
from .data import fetch
from .errors import GanMemoryError
from .images import save_grid
from .memory import MemoryBank
from .train import TrainConfig
from .train.precision import cpu_name

DEMO_TASKS = (("mnist", "mnist"), ("fashion-mnist", "fashion-mnist"), ("emoji", "emoji"))
MARKER = "demo.json"
EVAL_N = 1000  # generated and real images per FD-EL0 score: 15-30 s each on 2 CPU cores
# Minutes of learning, shared equally by the tasks, when no iteration count is given. Scoring,
# sampling and start-up took 2.3 to about 6 minutes more on the 2-core CPUs measured (the most on an
# AVX2-only one, in fp32), so the demo stays within 15.
LEARN_MINUTES = 8.0


def _digest(x: torch.Tensor) -> str:
    return hashlib.sha256(x.contiguous().numpy().tobytes()).hexdigest()[:16]


def _task_config(iters: int, seed: int) -> TrainConfig:
    # no flips: a mirrored digit, emoji or flag is another symbol
    return TrainConfig(iters=iters, seed=seed, flip=False, sample_every=max(1, iters // 3), ckpt_every=100,
                       log_every=25)


def run_demo(out: str | os.PathLike, iters: int | None = None, source: str | None = None, seed: int = 0,
             progress: bool = True, log: Callable[[str], None] = print, eval_n: int = EVAL_N,
             minutes: float = LEARN_MINUTES) -> dict:
    """Learn mnist -> fashion-mnist -> emoji into a new bank under ``out``; returns the report.

    Each task learns ``iters`` iterations; without a count, as many as ``minutes`` of learning
    shared by the three tasks buy on this machine, from timed throw-away runs (``budget``).
    With ``eval_n`` > 0 each task is scored with FD-EL0 (``eval_n`` generated against ``eval_n``
    of its training images) before learning, when it is still the source, and at the end."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise GanMemoryError(f"'{out}' exists and is not an earlier demo's folder; choose another --out")
        shutil.rmtree(out)  # an earlier demo's output: start again
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    for _, spec in DEMO_TASKS:
        fetch(spec.split(":")[0])
    per_step = None
    if iters is None:
        per_step = seconds_per_step(DEMO_TASKS[0][1], _task_config(1, seed), source=source)
        iters = iterations_for(minutes * 60 / len(DEMO_TASKS), per_step)
        log(f"{per_step:.3f} s per learning step here, so {minutes:g} minutes of learning make {iters:,} "
            f"iterations per task (--iters {iters} learns as many on any machine)")
    bank = MemoryBank.create(out / "bank", source)
    source_hash = bank.source.file_hash
    log(f"bank {out / 'bank'}: source {source_hash}, {bank.cfg.resolution} px")
    fingerprints: dict[str, str] = {}
    rows = []
    for name, spec in DEMO_TASKS:
        meta = bank.learn(name, spec, _task_config(iters, seed), progress=progress, log=log,
                          eval_every=iters if eval_n else 0, eval_n=eval_n or 1)
        x = bank.sample(name, 64, seed=seed)
        fingerprints[name] = _digest(x)
        save_grid(x, out / f"{name}.png", nrow=8, scale=2)
        log(f"learned '{name}' in {meta['seconds']:.0f} s; samples: {out / (name + '.png')}")
        rows.append(meta)
    strip = bank.interpolate(DEMO_TASKS[0][0], DEMO_TASKS[-1][0], steps=8, n=4, seed=seed, mode="whole")
    save_grid(strip, out / "interpolation.png", nrow=8, scale=2)
    strip_b = bank.interpolate(DEMO_TASKS[0][0], DEMO_TASKS[-1][0], steps=8, n=4, seed=seed, mode="blocks")
    save_grid(strip_b, out / "interpolation_blocks.png", nrow=8, scale=2)

    # Re-sample every task now that all are learned: a task's samples must not have moved.
    reopened = MemoryBank(out / "bank")
    n_task, n_g = reopened.generator_param_count()
    report = {"source_hash": source_hash, "source_unchanged": reopened.source.file_hash == source_hash,
              "processor": cpu_name(), "tasks": [], "seconds": round(time.perf_counter() - t_start, 1),
              "seconds_per_step": None if per_step is None else round(per_step, 4)}
    for i, (name, _) in enumerate(DEMO_TASKS):
        later = [n for n, _ in DEMO_TASKS[i + 1:]]
        same = _digest(reopened.sample(name, 64, seed=seed)) == fingerprints[name]
        scores = [h["FD-EL0"] for h in rows[i]["metrics"]]
        report["tasks"].append({"task": name, "iterations": rows[i]["iterations"], "seconds": rows[i]["seconds"],
                                "precision": rows[i]["train"]["precision"], "learned_before": later, "unchanged": same,
                                "fd_el0": [scores[0], scores[-1]] if scores else None})
    report["all_unchanged"] = all(t["unchanged"] for t in report["tasks"]) and report["source_unchanged"]
    atomic_write_json(out / MARKER, report)

    log("")
    fd_head = f"{'FD-EL0 source -> task':>24}" if eval_n else ""
    log(f"{'task':<15}{'iters':>6}{'seconds':>9}{fd_head}  {'learned after it':<24}samples for seed {seed}")
    for t in report["tasks"]:
        after = ", ".join(t["learned_before"]) or "-"
        verdict = "bit-identical to when it was learned" if t["unchanged"] else "CHANGED"
        fd = ""
        if t["fd_el0"]:
            a, b = t["fd_el0"]
            fd = f"{f'{a:.1f} -> {b:.1f} ({100 * b / a:.0f} %)':>24}"
        log(f"{t['task']:<15}{t['iterations']:>6}{t['seconds']:>9.0f}{fd}  {after:<24}{verdict}")
    if eval_n:
        log(f"FD-EL0: Fréchet distance on EfficientNet-Lite0 features (not FID), {eval_n} generated against "
            f"{eval_n} training images; lower is closer. Score curves and grids: {out / 'bank' / 'plots'}")
    log(f"source tensors: {'unchanged' if report['source_unchanged'] else 'CHANGED'} (hash {source_hash})")
    log(f"per task: {n_task:,} generator parameters, {100 * n_task / n_g:.1f} % of the generator")
    log(f"outputs: {out}/{{{','.join(n for n, _ in DEMO_TASKS)}}}.png, interpolation.png, "
        f"interpolation_blocks.png; total {report['seconds'] / 60:.1f} min")
    return report
