"""GPU check for a lent accelerator: GAN-memory learn steps and sampling on synthetic data.

    python benchmarks/gpu_check.py --res 256 --nf 64 --batch 16 --steps 10

Prints one JSON line per configuration: median step time (D step with R1 + G step + EMA, task
parameters only, as `ganmemory learn`), peak GPU memory, and sampling images/s of the
modulated generator. Run by benchmarks/gpu_check.sh; CI never runs it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from ganmemory.nets import Discriminator, Generator, NetConfig
from ganmemory.train import GANTrainer, TrainConfig


def check(res: int, nf: int, batch: int, steps: int, warmup: int, device: str) -> dict:
    torch.manual_seed(0)
    cfg = NetConfig(resolution=res, nf=nf, output="tanh")
    G_src, D_src = Generator(cfg), Discriminator(cfg)
    G = Generator(cfg, modulated=True)
    G.load_source(G_src.state_dict())
    D = Discriminator(cfg, modulated=True)
    D.load_source(D_src.state_dict())
    G, D = G.to(device), D.to(device)
    tr = GANTrainer(G, D, TrainConfig(batch_size=batch), g_params=G.task_parameters(), d_params=D.task_parameters())
    imgs = torch.randint(0, 256, (batch, res, res, 3), dtype=torch.uint8)
    labels = torch.zeros(batch, dtype=torch.long)
    torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(warmup + steps):
        torch.cuda.synchronize()
        t = time.perf_counter()
        tr.train_step(imgs, labels)
        torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated() / 2**30
    z = torch.randn(64, cfg.z_dim, device=device)
    with torch.no_grad():
        tr.G_ema.eval()
        tr.G_ema(z)
        torch.cuda.synchronize()
        t = time.perf_counter()
        reps = 5
        for _ in range(reps):
            tr.G_ema(z)
        torch.cuda.synchronize()
        ips = 64 * reps / (time.perf_counter() - t)
    return {"resolution": res, "nf": nf, "batch": batch, "median_step_s": round(statistics.median(times), 4),
            "min_step_s": round(min(times), 4), "peak_mem_gib": round(peak, 2),
            "sample_images_per_s": round(ips, 1), "task_params": sum(p.numel() for p in G.task_parameters()),
            "device": torch.cuda.get_device_name(), "torch": torch.__version__,
            "threads": torch.get_num_threads()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--res", type=int, nargs="+", default=[256])
    p.add_argument("--nf", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    a = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device")
    for res in a.res:
        print(json.dumps(check(res, a.nf, a.batch, a.steps, a.warmup, "cuda")), flush=True)


if __name__ == "__main__":
    main()
