"""Median seconds per training step (one D step with R1 + one G step + EMA), batch 16.

    python benchmarks/train_speed.py                      # 32 and 64 px, nf 32
    python benchmarks/train_speed.py --res 32 --steps 30 --nf 32 --r1-every 1

Synthetic uint8 images, so only the network and optimizer work is timed. Prints one JSON
line per resolution and a Markdown table row for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from ganmemory.nets import Discriminator, Generator, NetConfig
from ganmemory.train import GANTrainer, TrainConfig


def measure(res: int, nf: int, batch: int, steps: int, warmup: int, r1_every: int, device: str) -> dict:
    torch.manual_seed(0)
    cfg = NetConfig(resolution=res, nf=nf)
    G, D = Generator(cfg).to(device), Discriminator(cfg).to(device)
    tr = GANTrainer(G, D, TrainConfig(batch_size=batch, r1_every=r1_every))
    imgs = torch.randint(0, 256, (batch, res, res, 3), dtype=torch.uint8)
    labels = torch.zeros(batch, dtype=torch.long)
    times = []
    for i in range(warmup + steps):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        tr.train_step(imgs, labels)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return {"resolution": res, "nf": nf, "batch": batch, "steps": steps, "r1_every": r1_every,
            "median_s": round(statistics.median(times), 4), "min_s": round(min(times), 4),
            "max_s": round(max(times), 4), "device": device, "threads": torch.get_num_threads(),
            "torch": torch.__version__, "cpu": platform.processor() or platform.machine()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--res", type=int, nargs="+", default=[32, 64])
    p.add_argument("--nf", type=int, default=32)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--r1-every", type=int, default=1)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    for res in a.res:
        r = measure(res, a.nf, a.batch, a.steps, a.warmup, a.r1_every, a.device)
        print(json.dumps(r))
        print(f"| {res} px | nf {a.nf} | batch {a.batch} | R1 every {a.r1_every} | "
              f"{r['median_s']:.3f} s (min {r['min_s']:.3f}, max {r['max_s']:.3f}) |")


if __name__ == "__main__":
    main()
