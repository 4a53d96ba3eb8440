"""Training-step time against batch size, side by side: does a larger batch buy images per second?

    python benchmarks/batch_speed.py                          # 32 px, batches 16 32 64
    python benchmarks/batch_speed.py --batches 16 32 --res 64 --out /tmp/batch.json

Builds ``step_speed.py``'s ``fast`` trainer (a GAN memory's task over a random-initialised
nf-32 source, ``--preset paper`` maths, synthetic uint8 data) once per batch size, in the
precision ``learn`` would pick here (``auto``), and times the sizes in turn inside every
repetition so machine noise hits them alike. Prints the median step, its ratio to the first
batch's and the images per second.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import date

import torch

from ganmemory.atomic import atomic_write_json
from ganmemory.train.precision import cpu_name, resolve
from step_speed import make


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, nargs="+", default=[16, 32, 64])
    p.add_argument("--res", type=int, default=32)
    p.add_argument("--reps", type=int, default=15, help="timed steps per batch size (median reported)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--out", default=None, help="also write the results as JSON here")
    a = p.parse_args()
    precision = resolve("auto", torch.device("cpu"), lambda _: None)
    variant = "fast-bf16" if precision == "bf16" else "fast"
    trainers, data = {}, {}
    for b in a.batches:
        trainers[b] = make(variant, a.res, 32, b)
        data[b] = (torch.randint(0, 256, (b, a.res, a.res, 3), dtype=torch.uint8), torch.zeros(b, dtype=torch.long))
        for _ in range(a.warmup):
            trainers[b].train_step(*data[b])
    times: dict[int, list[float]] = {b: [] for b in a.batches}
    for _ in range(a.reps):
        for b in a.batches:
            t = time.perf_counter()
            trainers[b].train_step(*data[b])
            times[b].append(time.perf_counter() - t)
    first = statistics.median(times[a.batches[0]])
    rows = []
    print(f"{cpu_name()}, {torch.get_num_threads()} threads, {a.res} px, {precision}")
    for b in a.batches:
        m = statistics.median(times[b])
        rows.append({"batch": b, "median_s": round(m, 5), "of_first": round(m / first, 3),
                     "images_per_s": round(b / m, 1)})
        print(f"batch {b:4d}: {1000 * m:7.1f} ms per step, {m / first:.2f}x batch {a.batches[0]}'s, "
              f"{b / m:6.0f} images/s")
    if a.out:
        atomic_write_json(a.out, {"date": date.today().isoformat(), "processor": cpu_name(),
                                  "threads": torch.get_num_threads(), "res": a.res, "precision": precision,
                                  "reps": a.reps, "rows": rows})


if __name__ == "__main__":
    main()
