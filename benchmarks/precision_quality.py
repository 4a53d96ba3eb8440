"""Does bf16 hold a task's quality? fp32 against bf16 at equal steps, over several seeds.

    python benchmarks/precision_quality.py                       # 3 seeds x 500 steps: about 10 min with AMX
    python benchmarks/precision_quality.py --seeds 1 --iters 20 --n 64 --out /tmp/pq   # smoke test

For every seed, an unconditional mnist task is learned over the shipped source with ``learn``'s
defaults and no flips, once in fp32 and once in bf16, one after the other, and scored with
FD-EL0 (a Fréchet distance on EfficientNet-Lite0 features, not FID) on ``--n`` generated against
``--n`` training images at the start (the source) and at the end; ``seconds`` is the learning
time alone. Runs only where the processor computes bf16 natively (AVX-512 BF16 or AMX): elsewhere
bf16 falls back to fp32 and there is nothing to compare.

Writes OUT/results.json, OUT/table.md and a 64-sample grid per run (OUT/PRECISION-SEED.png).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch

from ganmemory.atomic import atomic_write_bytes, atomic_write_json
from ganmemory.images import save_grid
from ganmemory.memory import MemoryBank
from ganmemory.train import TrainConfig
from ganmemory.train.precision import bf16_native, cpu_name

DATA = "mnist"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--iters", type=int, default=500)
    p.add_argument("--n", type=int, default=1000, help="generated and real images per FD-EL0 score")
    p.add_argument("--out", default="runs/precision_quality")
    a = p.parse_args()
    if not bf16_native("cpu"):
        sys.exit(f"{cpu_name()} computes bf16 only by emulation: nothing to compare here")
    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    bank = MemoryBank.create(out / "bank")
    results = {"date": time.strftime("%Y-%m-%d"), "processor": cpu_name(), "threads": torch.get_num_threads(),
               "data": DATA, "iters": a.iters, "n": a.n, "source_hash": bank.source.file_hash, "runs": []}
    print(f"{results['processor']}, {results['threads']} threads", flush=True)
    for seed in a.seeds:
        for precision in ("fp32", "bf16"):
            name = f"{precision}-{seed}"
            cfg = TrainConfig(iters=a.iters, seed=seed, precision=precision, flip=False, sample_every=0,
                              ckpt_every=0)
            meta = bank.learn(name, DATA, cfg, progress=False, eval_every=a.iters, eval_n=a.n,
                              log=lambda _: None)
            start, end = meta["metrics"][0], meta["metrics"][-1]
            row = {"seed": seed, "precision": meta["train"]["precision"], "fd_start": start["FD-EL0"],
                   "fd_end": end["FD-EL0"], "seconds": end["seconds"]}
            results["runs"].append(row)
            save_grid(bank.sample(name, 64, seed=0), out / f"{name}.png", nrow=8, scale=2)
            print(f"seed {seed} {precision}: FD-EL0 {row['fd_start']:.1f} -> {row['fd_end']:.1f}, "
                  f"{row['seconds']:.1f} s of learning", flush=True)
    by = {pr: [r for r in results["runs"] if r["precision"] == pr] for pr in ("fp32", "bf16")}
    results["summary"] = {
        pr: {"mean_fd_end": round(statistics.mean(r["fd_end"] for r in rows), 2),
             "median_seconds": round(statistics.median(r["seconds"] for r in rows), 1)} for pr, rows in by.items()}
    results["summary"]["bf16_minus_fp32_per_seed"] = [
        round(b["fd_end"] - f["fd_end"], 2) for f, b in zip(by["fp32"], by["bf16"], strict=True)]
    results["summary"]["speedup"] = round(results["summary"]["fp32"]["median_seconds"]
                                          / results["summary"]["bf16"]["median_seconds"], 2)
    lines = ["| seed | fp32 FD-EL0 start -> end | bf16 | bf16 - fp32 | learning s fp32 / bf16 |",
             "|---|---|---|---|---|"]
    for f, b in zip(by["fp32"], by["bf16"], strict=True):
        lines.append(f"| {f['seed']} | {f['fd_start']:.1f} -> {f['fd_end']:.1f} | {b['fd_end']:.1f} | "
                     f"{b['fd_end'] - f['fd_end']:+.1f} | {f['seconds']:.1f} / {b['seconds']:.1f} |")
    s = results["summary"]
    lines.append(f"| mean | {s['fp32']['mean_fd_end']:.1f} | {s['bf16']['mean_fd_end']:.1f} | | "
                 f"median {s['fp32']['median_seconds']:.1f} / {s['bf16']['median_seconds']:.1f} "
                 f"({s['speedup']:.2f}x) |")
    table = "\n".join(lines) + "\n"
    print(table)
    atomic_write_bytes(out / "table.md", table.encode())
    atomic_write_json(out / "results.json", results)


if __name__ == "__main__":
    main()
