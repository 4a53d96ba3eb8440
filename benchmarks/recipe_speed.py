"""Seconds per learning step of recipe variants, side by side: does a recipe lever cost time?

    python benchmarks/recipe_speed.py                                # 400 steps, 3 rounds
    python benchmarks/recipe_speed.py --steps 200 --reps 5 --out /tmp/recipe_speed.json
    python benchmarks/recipe_speed.py --variant default '{}' --variant "batch 32" '{"batch_size": 32}'

Each variant is ``learn``'s default recipe with its R1 weight and EMA ramp-up set explicitly
(``VARIANTS``; the last pair is ``learn``'s default), so a name says what ran whatever the
defaults are; ``--variant NAME JSON`` (repeatable) measures those options on top of the
defaults instead, the first named the base of the ratios. Every round learns one unconditional
mnist task per variant over the shipped source in a throw-away bank (no flips, no grids, no
checkpoints), the variants taking turns so machine noise hits them alike, and records the
seconds ``MemoryBank.learn`` reports divided by the steps. Prints the medians; ``--out`` also
writes every round as JSON. The R1 weight and the EMA's ramp-up change no
arithmetic of the step's networks, so between ``VARIANTS`` a difference is the machine's, or the
values'; a batch size or an R1 interval does change the step's work.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from datetime import date
from pathlib import Path

from ganmemory.atomic import atomic_write_json
from ganmemory.errors import GanMemoryError
from ganmemory.memory import MemoryBank
from ganmemory.train import TrainConfig
from ganmemory.train.precision import cpu_name

VARIANTS = {"r1 10, ema 0.05": {"r1_gamma": 10.0, "ema_rampup": 0.05},
            "r1 1, ema 0.05": {"r1_gamma": 1.0, "ema_rampup": 0.05},
            "r1 10, ema 0.01": {"r1_gamma": 10.0, "ema_rampup": 0.01},
            "r1 1, ema 0.01": {"r1_gamma": 1.0, "ema_rampup": 0.01}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=400, help="learning steps per task")
    p.add_argument("--reps", type=int, default=3, help="rounds over the variants")
    p.add_argument("--out", type=Path, help="JSON file to write")
    p.add_argument("--variant", nargs=2, action="append", metavar=("NAME", "JSON"),
                   help="measure these TrainConfig options instead of VARIANTS (repeatable)")
    a = p.parse_args()
    if a.steps < 1 or a.reps < 1:
        p.error("--steps and --reps must be at least 1")
    variants = VARIANTS
    if a.variant:
        names = [name for name, _ in a.variant]
        if len(set(names)) < len(names):
            p.error(f"--variant: each NAME once, got {', '.join(names)}")
        try:
            variants = {name: json.loads(text) for name, text in a.variant}
        except json.JSONDecodeError as e:
            p.error(f"--variant: not JSON: {e}")
        for name, options in variants.items():
            try:
                TrainConfig(**options)
            except (TypeError, GanMemoryError) as e:
                p.error(f"--variant {name}: {e}")
    base = next(iter(variants))  # ratios are against it
    times: dict[str, list[float]] = {k: [] for k in variants}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "bank"
        for rep in range(a.reps):
            for name, options in variants.items():
                shutil.rmtree(root, ignore_errors=True)
                cfg = TrainConfig(**{**options, "iters": a.steps, "sample_every": 0, "ckpt_every": 0,
                                     "log_every": a.steps, "flip": False})
                seconds = MemoryBank.create(root).learn("t", "mnist", cfg, progress=False, log=lambda _: None)
                times[name].append(seconds["seconds"] / a.steps)
                print(f"round {rep}: {name:<16} {times[name][-1]:.4f} s per step", flush=True)
    medians = {k: statistics.median(v) for k, v in times.items()}
    print(f"{cpu_name()}; medians of {a.reps} rounds of {a.steps} steps:")
    for name, m in medians.items():
        print(f"  {name:<16} {m:.4f} s per step ({m / medians[base]:.2f}x {base})")
    if a.out:
        atomic_write_json(a.out, {"date": date.today().isoformat(), "processor": cpu_name(), "steps": a.steps,
                                  "reps": a.reps, "variants": variants, "median_s_per_step": medians,
                                  "all": times})


if __name__ == "__main__":
    main()
