"""Batched multi-task sampling against a Python loop over tasks, side by side.

    python benchmarks/sampling_speed.py                 # T = 5 tasks, 64 images each, shipped source
    python benchmarks/sampling_speed.py --device cuda   # the same on a GPU (run by gpu_check.sh)

The tasks are the source's task parameters perturbed with seeded noise (sampling cost does not
depend on what the parameters are). Both paths get the states in memory; the loop loads each
task into the modulated generator and runs it, the batched path stacks the states and runs
one grouped pass (``MemoryBank.sample_batched``). Prints medians, their ratio and the largest
difference between the outputs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from ganmemory.nets import Generator
from ganmemory.source import Source, generate, latents


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=5)
    p.add_argument("-n", type=int, default=64, help="images per task")
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--source", default=None)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    src = Source.load(a.source)
    G = Generator(src.cfg, modulated=True)
    G.load_source(src.G.state_dict())
    G.eval().to(a.device)
    base = G.task_state_dict()
    g = torch.Generator().manual_seed(0)
    states = [{k: v + 0.05 * v.std() * torch.randn(v.shape, generator=g).to(a.device) for k, v in base.items()}
              for _ in range(a.tasks)]
    stacked = {k: torch.stack([s[k] for s in states]) for k in base}
    z = latents(a.n, src.cfg.z_dim, 0).to(a.device)
    sync = torch.cuda.synchronize if a.device.startswith("cuda") else (lambda: None)

    def loop():
        out = []
        for s in states:
            G.load_task_state(s)
            out.append(generate(G, z))
        return torch.cat(out)

    @torch.no_grad()
    def batched():  # sample-major inside the network, task-major out, as MemoryBank.sample_batched
        x = torch.func.functional_call(G, stacked, (z.repeat_interleave(a.tasks, 0),)).clamp(-1, 1)
        return x.reshape(a.n, a.tasks, *x.shape[1:]).transpose(0, 1).reshape(-1, *x.shape[1:])

    t_loop, t_batch = [], []
    for _ in range(a.reps):  # interleaved, so drifts in machine load hit both alike
        sync()
        t = time.perf_counter()
        x_loop = loop()
        sync()
        t_loop.append(time.perf_counter() - t)
        t = time.perf_counter()
        x_batch = batched()
        sync()
        t_batch.append(time.perf_counter() - t)
    res = {"tasks": a.tasks, "n_per_task": a.n, "resolution": src.cfg.resolution,
           "loop_median_s": round(statistics.median(t_loop), 4),
           "batched_median_s": round(statistics.median(t_batch), 4),
           "speedup": round(statistics.median(t_loop) / statistics.median(t_batch), 2),
           "max_abs_diff": float((x_loop - x_batch).abs().max()), "threads": torch.get_num_threads(),
           "device": a.device}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
