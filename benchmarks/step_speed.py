"""Training-step speed: an original-style eager step against ours, side by side (issue 7).

    python benchmarks/step_speed.py                   # 64 px and 32 px, nf 32, batch 16
    python benchmarks/step_speed.py --res 32 --reps 9

One step = D step (BCE + R1 on every step, weight 10) + G step + EMA, task parameters only,
on a GAN memory over a random-initialised source, synthetic uint8 data. Three variants, run
in turn inside every repetition so machine noise hits them alike:

- ``original-style``: what issue 7 calls the original's approach. Every forward call of a
  modulated generator conv normalises the raw source kernel (mean and std over k x k) and
  then modulates it; every discriminator call rebuilds gamma * W + beta; Adam loops over
  tensors (PyTorch's for-loop implementation). Same networks, same maths.
- ``eager``: ours with ``GANTrainer(fast=False)``: normalised kernels stored once at load,
  rebuilt by every forward call; for-loop Adam.
- ``fast``: ours as ``ganmemory learn`` runs it: each network's kernels built once per
  network state in a step, fused Adam.

It also reports the step's GFLOP (convolutions and matrix products, counted by PyTorch's
FLOP formulas while one step runs) and the matmul peak measured in the same run, and checks
that the three variants end a few steps at the same parameters.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections import Counter
from datetime import date

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from ganmemory.nets import Discriminator, Generator, NetConfig
from ganmemory.nets.modulated import ModulatedConv2d
from ganmemory.train import GANTrainer, TrainConfig


class OriginalStyleConv2d(ModulatedConv2d):
    """A generator conv that keeps the raw source kernel and normalises it on every call."""

    def kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.weight_raw
        mu = w.mean(dim=(2, 3), keepdim=True)
        sigma = w.std(dim=(2, 3), keepdim=True)
        w = self.gamma[..., None, None] * ((w - mu) / sigma) + self.beta[..., None, None]
        return w, self.bias_src + self.dbias


def original_style(G: Generator, G_src: Generator) -> None:
    """Turn G's normalised modulated convs into ones that normalise their source per call."""
    src = G_src.state_dict()
    for name, mod in G.named_modules():
        if isinstance(mod, ModulatedConv2d) and mod.normalise:
            mod.register_buffer("weight_raw", src[f"{name}.weight"].clone())
            mod.__class__ = OriginalStyleConv2d  # same parameters and buffers, per-call kernel


class FlopCount(TorchDispatchMode):
    """Sums PyTorch's FLOP formulas (convolutions, matrix products, their backwards)."""

    def __init__(self) -> None:
        super().__init__()
        self.flops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.flops[str(func._overloadpacket)] += formula(*args, **kwargs, out_val=out)
        return out


def make(variant: str, res: int, nf: int, batch: int) -> GANTrainer:
    torch.manual_seed(0)
    cfg = NetConfig(resolution=res, nf=nf)
    G_src, D_src = Generator(cfg), Discriminator(cfg)
    G = Generator(cfg, modulated=True)
    G.load_source(G_src.state_dict())
    D = Discriminator(cfg, modulated=True)
    D.load_source(D_src.state_dict())
    if variant == "original-style":
        original_style(G, G_src)
    return GANTrainer(G, D, TrainConfig(batch_size=batch), g_params=G.task_parameters(),
                      d_params=D.task_parameters(), fast=variant == "fast")


def matmul_peak(n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        ts.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(ts) / 1e9


VARIANTS = ("original-style", "eager", "fast")


def measure(res: int, nf: int, batch: int, reps: int, warmup: int) -> dict:
    trainers = {v: make(v, res, nf, batch) for v in VARIANTS}
    imgs = torch.randint(0, 256, (batch, res, res, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    labels = torch.zeros(batch, dtype=torch.long)
    for tr in trainers.values():
        for _ in range(warmup):
            tr.train_step(imgs, labels)
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for _ in range(reps):
        for v, tr in trainers.items():
            t = time.perf_counter()
            tr.train_step(imgs, labels)
            times[v].append(time.perf_counter() - t)
    # every trainer has taken warmup + reps identical steps: their parameters must agree
    ref = trainers["original-style"].G.task_state_dict()
    diffs = {v: max((tr.G.task_state_dict()[k] - ref[k]).abs().max().item() for k in ref)
             for v, tr in trainers.items() if v != "original-style"}
    counter = FlopCount()
    with counter:
        trainers["fast"].train_step(imgs, labels)
    gflop = sum(counter.flops.values()) / 1e9
    med = {v: statistics.median(ts) for v, ts in times.items()}
    return {"resolution": res, "nf": nf, "batch": batch, "reps": reps,
            "median_s": {v: round(m, 4) for v, m in med.items()},
            "min_s": {v: round(min(ts), 4) for v, ts in times.items()},
            "speedup_vs_original_style": round(med["original-style"] / med["fast"], 2),
            "speedup_vs_eager": round(med["eager"] / med["fast"], 2),
            "gflop_per_step": round(gflop, 2),
            "gflops_fast": round(gflop / med["fast"], 1),
            "max_abs_param_diff_vs_original_style": diffs}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--res", type=int, nargs="+", default=[64, 32])
    p.add_argument("--nf", type=int, default=32)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--reps", type=int, default=7, help="timed steps per variant (median reported)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--out", default=None, help="also write the results as JSON here")
    a = p.parse_args()
    peak = matmul_peak()
    rows = []
    for res in a.res:
        r = measure(res, a.nf, a.batch, a.reps, a.warmup)
        rows.append(r)
        print(json.dumps(r), flush=True)
    peak_after = matmul_peak()
    info = {"date": date.today().isoformat(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(),
            "matmul_peak_gflops": [round(peak, 1), round(peak_after, 1)], "rows": rows}
    print(json.dumps({k: v for k, v in info.items() if k != "rows"}))
    for r in rows:
        m = r["median_s"]
        print(f"| {r['resolution']} px | {m['original-style']:.3f} s | {m['eager']:.3f} s | {m['fast']:.3f} s | "
              f"{r['speedup_vs_original_style']:.2f}x | {r['speedup_vs_eager']:.2f}x | "
              f"{r['gflop_per_step']:.1f} | {r['gflops_fast']:.0f} |")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(info, f, indent=1)


if __name__ == "__main__":
    main()
