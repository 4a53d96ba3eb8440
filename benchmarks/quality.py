"""What a learned task looks like, by number and by eye, against learning time on this machine.

    python benchmarks/quality.py                   # the full run: about 60 min on 2 CPU cores
    python benchmarks/quality.py --minutes 0.2 0.2 --n 64 --per-class 8 --cas-steps 10 --out /tmp/q   # smoke test
    python benchmarks/quality.py --tasks mnist --cfg '{"lr_decay": 0.3}'   # another recipe, same wall time
    python benchmarks/quality.py --tasks mnist --iters 3000 0 --checkpoints 1   # a fixed number of steps
    python benchmarks/quality.py --tasks mnist --cfg '{"seed": 1}' --floor-from runs/quality/results.json

Two tasks over the shipped 32 px source, each learned with ``learn``'s defaults (``--preset tuned``,
which gives the class-conditional task R1 10 and a mode-seeking term of 0.1) but without random
flips (``--flip`` adds them; a mirrored digit is another symbol), and with ``--cfg``'s options on
top:

- ``mnist``: unconditional, ``--minutes`` [0] of learning;
- ``mnist-classes``: class-conditional, ``--minutes`` [1] of learning.

The learning time is turned into iterations by timing short runs of the same task first
(``--calibrate`` and 4x as many steps, twice each, the fastest of each length kept; their
difference leaves out a run's fixed start-up);
``--iters`` gives the iterations instead.
Each task is scored ``--checkpoints`` + 1 times (at the start, which is the source, and at equal
steps to the end) with FD-EL0 on ``--n`` generated images against ``--n`` images of the real test
split, and a 64-sample grid is saved beside every score. Each score records its iteration and the
seconds spent learning up to it (scoring excluded). The floor is FD-EL0 between two disjoint
``--n``-image halves of the test split; ``--floor-from`` takes it from an earlier run's
results.json of the same ``--n`` (on a 2-core CPU it costs about 12 minutes at n = 5,000).

The conditional task also gets the Classification Accuracy Score (CAS, Ravuri & Vinyals 2019):
the library's default CNN trained on ``--per-class`` generated images per class for ``--cas-steps``
Adam steps, tested on the real test split; beside it the same protocol on real training images
(the ceiling). Both also give each class's accuracy on its own real test images, which shows
which of the generator's classes fall short.

Writes OUT/results.json, OUT/table.md, OUT/fd.png and OUT/NAME/iter_XXXXXXX.png. FD-EL0 is a
Fréchet distance on EfficientNet-Lite0 features, not FID.

Targets: mnist's final FD-EL0 at most 25 % of the source's; CAS at least 97 %.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from ganmemory.atomic import atomic_write_bytes, atomic_write_json
from ganmemory.budget import seconds_per_step
from ganmemory.errors import GanMemoryError
from ganmemory.evaluate import CASProtocol, classification_accuracy_score, real_data_accuracy, real_floor
from ganmemory.memory import MemoryBank
from ganmemory.metrics.features import build_extractor
from ganmemory.plots import plot_curves
from ganmemory.train import TrainConfig
from ganmemory.train.precision import cpu_name

RUNS = (("mnist", False), ("mnist-classes", True))
TRAIN, TEST = "mnist", "mnist@test"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, nargs=2, default=[15.0, 20.0], metavar=("UNCOND", "COND"),
                   help="learning time of each task")
    p.add_argument("--iters", type=int, nargs=2, metavar=("UNCOND", "COND"),
                   help="learn this many iterations instead of --minutes (no calibration): recipes compared "
                        "at equal steps")
    p.add_argument("--checkpoints", type=int, default=3, help="scores after the start, at equal steps")
    p.add_argument("--n", type=int, default=5000, help="generated and real images per FD-EL0 score")
    p.add_argument("--per-class", type=int, default=1000, help="CAS: training images per class")
    p.add_argument("--cas-steps", type=int, default=2000, help="CAS: classifier steps (batch 64)")
    p.add_argument("--calibrate", type=int, default=20,
                   help="size each run from timed runs of this many and 4x as many steps")
    p.add_argument("--tasks", nargs="+", default=[n for n, _ in RUNS], choices=[n for n, _ in RUNS])
    p.add_argument("--flip", action="store_true", help="random horizontal flips of the reals (learn's default; "
                   "a mirrored digit is another symbol, so off here)")
    p.add_argument("--cfg", type=json.loads, default={}, metavar="JSON",
                   help="recipe options on top of learn's defaults, as TrainConfig fields: '{\"batch_size\": 32}'")
    p.add_argument("--floor-from", type=Path, metavar="RESULTS",
                   help="take the floor from an earlier run's results.json of the same --n (it is a property of "
                        "the data, and costs minutes) instead of computing it")
    p.add_argument("--out", default="runs/quality")
    a = p.parse_args()
    floor = None
    if a.floor_from:
        try:
            earlier = json.loads(a.floor_from.read_text())
            floor, same = float(earlier["floor"]), (earlier["n"], earlier["test"]) == (a.n, TEST)
        except (OSError, ValueError, KeyError, TypeError) as e:
            p.error(f"--floor-from {a.floor_from}: not a quality.py results file ({e})")
        if not same:
            p.error(f"--floor-from {a.floor_from}: its floor is for n = {earlier['n']} of {earlier['test']}, "
                    f"not n = {a.n} of {TEST}")
    fixed = {"iters", "conditional", "flip", "sample_every", "ckpt_every", "log_every"} & set(a.cfg)
    if fixed:
        p.error(f"--cfg: {', '.join(sorted(fixed))} is set by this benchmark")
    try:  # a bad field or value fails here, before the floor is computed
        TrainConfig.preset("tuned", **a.cfg)
    except (TypeError, GanMemoryError) as e:
        p.error(f"--cfg: {e}")
    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t_all = time.perf_counter()
    results = {"date": time.strftime("%Y-%m-%d"), "processor": cpu_name(), "threads": torch.get_num_threads(),
               "n": a.n, "train": TRAIN, "test": TEST, "recipe": a.cfg, "tasks": {}}
    print(f"{results['processor']}, {results['threads']} threads", flush=True)
    results["floor"] = real_floor(TEST, 32, a.n, build_extractor("el0")) if floor is None else floor
    results["floor_from"] = None if floor is None else str(a.floor_from)
    print(f"floor: FD-EL0 {results['floor']:.2f} between two halves of {TEST} (n = {a.n})"
          f"{'' if floor is None else f', from {a.floor_from}'}", flush=True)
    protocol = CASProtocol(per_class=a.per_class, steps=a.cas_steps)
    bank = MemoryBank.create(out / "bank")
    results["source_hash"] = bank.source.file_hash
    for (name, conditional), minutes in zip(RUNS, a.minutes):
        if name not in a.tasks:
            continue
        if a.iters:
            step, iters = None, max(a.checkpoints, a.iters[conditional])
            print(f"{name}: {iters} iterations", flush=True)
        else:
            probe = TrainConfig.preset("tuned", iters=1, conditional=conditional, flip=a.flip, **a.cfg)
            step = seconds_per_step(TRAIN, probe, steps=a.calibrate)
            iters = max(a.checkpoints, int(minutes * 60 / step))
            print(f"{name}: {step:.3f} s per step -> {iters} iterations for {minutes:g} min", flush=True)
        every = -(-iters // a.checkpoints)
        print(f"{name}: scored every {every}", flush=True)
        cfg = TrainConfig.preset("tuned", iters=iters, conditional=conditional, flip=a.flip, sample_every=0,
                                 ckpt_every=500, **a.cfg)
        meta = bank.learn(name, TRAIN, cfg, progress=False, eval_every=every, eval_n=a.n, eval_data=TEST,
                          log=lambda msg, name=name: print(f"  {name} {msg}", flush=True))
        shutil.copytree(out / "bank" / "plots" / name, out / name)
        row = {"conditional": conditional, "flip": a.flip, "minutes": None if a.iters else minutes,
               "iterations": iters,
               "seconds_per_step": None if step is None else round(step, 4), "history": meta["metrics"],
               "learn_seconds": meta["seconds"], "r1_gamma": cfg.r1_gamma, "mode_seeking": cfg.mode_seeking,
               "precision": meta["train"]["precision"]}
        hist = meta["metrics"]
        row["fd_ratio"] = hist[-1]["FD-EL0"] / hist[0]["FD-EL0"]
        if conditional:
            cas, real = classification_accuracy_score(bank, name, TEST, protocol), \
                real_data_accuracy(TRAIN, TEST, 32, protocol)
            row["cas"], row["cas_per_class"] = cas["value"], cas["per_class"]
            row["real_accuracy"], row["real_per_class"] = real["value"], real["per_class"]
            print(f"  {name}: CAS {100 * row['cas']:.1f} % against {100 * row['real_accuracy']:.1f} % "
                  "for real images", flush=True)
        results["tasks"][name] = row
        atomic_write_json(out / "results.json", results)
    results["protocol"] = protocol.__dict__
    results["seconds"] = round(time.perf_counter() - t_all, 1)
    atomic_write_json(out / "results.json", results)
    write_report(results, out)


def write_report(results: dict, out: Path) -> None:
    lines = [f"{results['processor']}, {results['threads']} threads, {results['date']}; FD-EL0 on "
             f"n = {results['n']} generated against n = {results['n']} of {results['test']}; "
             f"floor {results['floor']:.2f}", "",
             "| task | iterations | learning s | FD-EL0 | of the source's |", "|---|---|---|---|---|"]
    curves = {}
    for name, row in results["tasks"].items():
        start = row["history"][0]["FD-EL0"]
        for h in row["history"]:
            lines.append(f"| {name} | {h['iteration']} | {h['seconds']:.0f} | {h['FD-EL0']:.2f} | "
                         f"{100 * h['FD-EL0'] / start:.0f} % |")
        curves[name] = ([h["seconds"] / 60 for h in row["history"]], [h["FD-EL0"] for h in row["history"]])
        if "cas" in row:
            lines.append(f"\nCAS of {name}: {100 * row['cas']:.2f} %; the same classifier on real images: "
                         f"{100 * row['real_accuracy']:.2f} % (protocol {results.get('protocol')})\n")
            classes = list(row["cas_per_class"])
            lines += ["| accuracy on each class's real test images | " + " | ".join(classes) + " |",
                      "|---|" + "---|" * len(classes),
                      "| trained on generated images (CAS) | " +
                      " | ".join(f"{100 * row['cas_per_class'][c]:.1f}" for c in classes) + " |",
                      "| trained on real images | " +
                      " | ".join(f"{100 * row['real_per_class'][c]:.1f}" for c in classes) + " |", ""]
    atomic_write_bytes(out / "table.md", ("\n".join(lines) + "\n").encode())
    plot_curves(curves, out / "fd.png", title=f"FD-EL0 against learning time ({results['processor']})",
                xlabel="minutes of learning", ylabel="FD-EL0")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
