"""Training-step speed: the authors' iteration, rebuilt on our networks, against ours, side by side.

    python benchmarks/step_speed.py                   # 64 px and 32 px, nf 32, batch 16
    python benchmarks/step_speed.py --res 32 --reps 9

One iteration trains the task parameters of a GAN memory over a random-initialised source (nf 32,
batch 16, synthetic uint8 data) with BCE and R1 (weight 10) on every step, then updates the EMA
(GP-GAN's settings, ``--preset paper``). Three variants, run in turn inside every repetition so
machine noise hits them alike:

- ``original``: the GAN Memory authors' iteration as their public training loop runs it,
  written here from its description (their code is not in this repository):
  1. the G step first: G forward, D forward on the fakes, BCE towards "real", backward, Adam.
     Nothing is toggled, so D's trainable parameters get gradients too, which the D step's
     zero_grad then throws away;
  2. the EMA: every parameter of G, frozen ones included, blended with ``copy_``;
  3. the D step: the reals with ``requires_grad``, BCE backward keeping the graph, R1 as a
     second backward; then the G step's fakes (detached, also with ``requires_grad``), BCE
     backward; Adam.
  Every forward call rebuilds its modulated kernels (gamma * W_n + beta, the kernel normalised
  once at load), every convolution is ``F.conv2d`` (``nets.ops.plain_ops``: no
  routes for tiny maps), and Adam is PyTorch's for-loop implementation, as in PyTorch 1.2.
- ``eager``: ours with ``GANTrainer(fast=False)``: D step on fresh fakes, then the G step with D
  frozen, every forward call rebuilding its kernels, for-loop Adam.
- ``fast``: ours as ``ganmemory learn`` runs it: each network's kernels built once per network
  state in a step, fused Adam.
- ``fast-bf16``: ``fast`` under bf16 autocast (``--precision bf16``), only where the processor
  computes bf16 natively (AVX-512 BF16 or AMX). Elsewhere PyTorch emulates it: on an AMD EPYC
  without either, this benchmark spent over 10 minutes on one core in its 64 px bf16 steps
  (2026-12-01) before it was stopped, so the variant is left out there.

``original`` orders its updates differently (G first, D on the G step's fakes), so it computes
other numbers than ours; ``eager`` and ``fast`` compute the same maths and must end at the same
parameters (checked). It also reports the step's GFLOP (convolutions and matrix products,
counted by PyTorch's FLOP formulas while one step runs), the fp32 and bf16 matmul peaks measured
in the same run, and the processor's name and bf16 flags.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from datetime import date

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from ganmemory.data import preprocess
from ganmemory.nets import Discriminator, Generator, NetConfig
from ganmemory.nets.ops import plain_ops
from ganmemory.train import GANTrainer, TrainConfig
from ganmemory.train.losses import r1_penalty
from ganmemory.train.precision import bf16_native, cpu_flags, cpu_name


def original_step(tr: GANTrainer, images_u8: torch.Tensor, labels: torch.Tensor, it: int) -> None:
    """One iteration in the authors' order on ``tr``'s networks and for-loop optimizers."""
    gen = torch.Generator().manual_seed(it)
    real = preprocess(images_u8, gen, flip=True)
    z = torch.randn(len(real), tr.G.cfg.z_dim, generator=gen)
    G, D, cfg = tr.G.train(), tr.D.train(), tr.cfg
    # 1. G step: D's trainable parameters keep requires_grad, so they get gradients as well
    tr.opt_g.zero_grad()
    fake = G(z, labels)
    d_fake = D(fake, labels)
    F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake)).backward()
    tr.opt_g.step()
    # 2. EMA over every weight of G: the frozen source kernels are parameters there, buffers here
    with torch.no_grad():
        src = {**dict(G.named_parameters()), **dict(G.named_buffers())}
        for name, p in [*tr.G_ema.named_parameters(), *tr.G_ema.named_buffers()]:
            if p.is_floating_point():
                p.copy_(cfg.ema_beta * p + (1 - cfg.ema_beta) * src[name])
    # 3. D step on the reals (BCE, then R1 as a second backward) and on the G step's fakes
    tr.opt_d.zero_grad()
    real.requires_grad_()
    d_real = D(real, labels)
    F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real)).backward(retain_graph=True)
    (cfg.r1_gamma * r1_penalty(d_real, real)).backward()
    fake = fake.detach().requires_grad_()
    d_fake = D(fake, labels)
    F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)).backward()
    tr.opt_d.step()


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
    precision = "bf16" if variant == "fast-bf16" else "fp32"
    return GANTrainer(G, D, TrainConfig.preset("paper", batch_size=batch, precision=precision),
                      g_params=G.task_parameters(), d_params=D.task_parameters(), fast=variant != "eager")


def matmul_peak(n: int = 2048, reps: int = 10, dtype: torch.dtype = torch.float32) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        ts.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(ts) / 1e9


VARIANTS = ("original", "eager", "fast") + (("fast-bf16",) if bf16_native("cpu") else ())


def measure(res: int, nf: int, batch: int, reps: int, warmup: int) -> dict:
    trainers = {v: make(v, res, nf, batch) for v in VARIANTS}
    imgs = torch.randint(0, 256, (batch, res, res, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    labels = torch.zeros(batch, dtype=torch.long)

    def step(v: str, it: int) -> None:
        if v == "original":
            with plain_ops():  # the authors' layers call the convolution as it is
                original_step(trainers[v], imgs, labels, it)
        else:
            trainers[v].train_step(imgs, labels)

    for v in VARIANTS:
        for it in range(warmup):
            step(v, it)
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for it in range(warmup, warmup + reps):
        for v in VARIANTS:
            t = time.perf_counter()
            step(v, it)
            times[v].append(time.perf_counter() - t)
    # eager and fast have taken warmup + reps identical steps: their parameters must agree
    ref = trainers["eager"].G.task_state_dict()
    diff = max((trainers["fast"].G.task_state_dict()[k] - ref[k]).abs().max().item() for k in ref)
    counter = FlopCount()
    with counter:
        trainers["fast"].train_step(imgs, labels)
    gflop = sum(counter.flops.values()) / 1e9
    med = {v: statistics.median(ts) for v, ts in times.items()}
    return {"resolution": res, "nf": nf, "batch": batch, "reps": reps,
            "median_s": {v: round(m, 4) for v, m in med.items()},
            "min_s": {v: round(min(ts), 4) for v, ts in times.items()},
            "speedup_vs_original": round(med["original"] / med["fast"], 2),
            "speedup_vs_eager": round(med["eager"] / med["fast"], 2),
            "bf16_vs_fp32": round(med["fast"] / med["fast-bf16"], 2) if "fast-bf16" in med else None,
            "gflop_per_step": round(gflop, 2),
            "gflops_fast": round(gflop / med["fast"], 1),
            "gflops_fast_bf16": round(gflop / med["fast-bf16"], 1) if "fast-bf16" in med else None,
            "max_abs_param_diff_fast_vs_eager": diff}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--res", type=int, nargs="+", default=[64, 32])
    p.add_argument("--nf", type=int, default=32)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--reps", type=int, default=7, help="timed steps per variant (median reported)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--out", default=None, help="also write the results as JSON here")
    a = p.parse_args()
    bf16 = bf16_native("cpu")  # emulated bf16 matmuls run for minutes on one core: only where native
    peak, peak16 = matmul_peak(), matmul_peak(dtype=torch.bfloat16) if bf16 else None
    rows = []
    for res in a.res:
        r = measure(res, a.nf, a.batch, a.reps, a.warmup)
        rows.append(r)
        print(json.dumps(r), flush=True)
    peak_after, peak16_after = matmul_peak(), matmul_peak(dtype=torch.bfloat16) if bf16 else None
    info = {"date": date.today().isoformat(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu": cpu_name(), "bf16_flags": sorted(cpu_flags() & {"avx512_bf16", "amx_bf16", "amx_tile"}),
            "matmul_peak_gflops": [round(peak, 1), round(peak_after, 1)],
            "bf16_matmul_peak_gflops": [round(peak16, 1), round(peak16_after, 1)] if bf16 else None, "rows": rows}
    print(json.dumps({k: v for k, v in info.items() if k != "rows"}))
    for r in rows:
        m = r["median_s"]
        print(f"| {r['resolution']} px | {m['original']:.3f} s | {m['eager']:.3f} s | {m['fast']:.3f} s | "
              f"{m.get('fast-bf16', float('nan')):.3f} s | {r['speedup_vs_original']:.2f}x | "
              f"{r['speedup_vs_eager']:.2f}x | {r['bf16_vs_fp32'] or float('nan'):.2f}x | "
              f"{r['gflop_per_step']:.1f} | {r['gflops_fast']:.0f} |")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(info, f, indent=1)


if __name__ == "__main__":
    main()
