"""Mixed precision: bf16 autocast for the networks' forward and backward passes.

``TrainConfig.precision`` is ``"auto"`` (the default), ``"fp32"`` or ``"bf16"``. ``auto`` is bf16
where the device computes it natively and it is not slower there, fp32 elsewhere; the precision
that ran is what a task, a checkpoint or a source stores.

Under ``TrainConfig.precision == "bf16"`` the convolutions and matrix products of G and D run in
bfloat16; everything that decides stability stays in float32: the parameters and Adam's state,
the EMA, the logits the losses read, R1's input gradient and its norm. Sampling from a bank is
always float32, so old tasks stay bit-identical whatever precision trained them.

bf16 pays only where the hardware has it: on a CPU, AVX-512 BF16 or AMX; on a GPU, compute
capability 8.0 or newer. Elsewhere PyTorch emulates it, slower than float32, so an explicit
``bf16`` falls back to float32 with one line saying so (``resolve``).

Native is not enough on a CPU: an Intel Xeon family 6 model 207 whose hypervisor hides AMX
reports AVX-512 BF16, yet there oneDNN's bf16 convolutions run at about 0.64x and the whole
training step at 0.74x the speed of float32. So on a CPU with native bf16, ``auto`` first times
a small convolution probe in both precisions (``cpu_bf16_speedup``, about 0.3 s, once per
process) and takes bf16 only where it is at least as fast. A GPU of compute capability 8.0 or
newer always gains from bf16 and is not probed.
"""

from __future__ import annotations

import contextlib
import functools
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, ContextManager

import torch
import torch.distributed as dist
import torch.nn.functional as F

PRECISIONS = ("auto", "fp32", "bf16")
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of native bf16 arithmetic


CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (Linux), read once per call; {} elsewhere."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields.setdefault(name.strip(), value.strip())
    return fields


def _flags(info: dict[str, str]) -> set[str]:
    return set(info.get("flags", "").split())


def cpu_flags() -> set[str]:
    return _flags(_cpuinfo())


# the instruction sets that change a step's speed and, through the kernels chosen, its rounding
_CPU_FEATURES = (("amx_bf16", "AMX"), ("avx512_bf16", "AVX-512 BF16"), ("avx512f", "AVX-512"), ("avx2", "AVX2"))


def cpu_name() -> str:
    """The processor, as every speed figure names it: model name, family and model, and its
    widest vector instructions, e.g. ``AMD EPYC (family 25 model 17; AVX-512 BF16, AVX-512)``.

    Machines sold under one model name differ in these, and so do their speed and the float
    rounding of their kernels."""
    info = _cpuinfo()
    name = info.get("model name") or platform.processor() or platform.machine()
    family, model = info.get("cpu family"), info.get("model")
    flags = _flags(info)
    features = [label for flag, label in _CPU_FEATURES if flag in flags]
    if "AVX-512" in features and "AVX2" in features:
        features.remove("AVX2")  # implied by AVX-512
    where = f"family {family} model {model}" if family and model else ""
    detail = "; ".join(part for part in (where, ", ".join(features)) if part)
    return f"{name} ({detail})" if detail else name


def bf16_native(device: str | torch.device) -> bool:
    """Whether ``device`` computes in bf16 natively (not emulated)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return bool(cpu_flags() & set(CPU_BF16_FLAGS))
    return False


PROBE_ROUNDS = 7  # rounds of the probe, fp32 and bf16 taking turns; the median of each is compared


def _probe_step(x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor, bf16: bool) -> None:
    """One forward and backward pass through two 3x3 convolutions shaped like the 32-px
    generator's middle blocks (128 -> 64 channels at 16x16, 64 -> 32 at 32x32), channels-last as
    the networks run on a CPU."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        h = F.leaky_relu(F.conv2d(x, w1, padding=1), 0.2)
        y = F.conv2d(F.interpolate(h, scale_factor=2.0), w2, padding=1)
    y.float().square().mean().backward()


@functools.cache
def cpu_bf16_speedup() -> float:
    """fp32's seconds over bf16's for the same convolutions' forward and backward on this CPU
    (> 1: bf16 is faster), medians of ``PROBE_ROUNDS`` timed rounds after one untimed round each.

    Measured once per process. Under torch.distributed the ranks report the smallest of their
    measurements, so every rank resolves ``auto`` to the same precision: every rank must then
    make its first call at the same point (``learn`` and ``pretrain`` resolve on every rank).

    Leaves the global random state alone, and runs with gradients on whatever context calls it."""
    with torch.inference_mode(False), torch.enable_grad():
        speedup = _time_probe()
    if dist.is_available() and dist.is_initialized():
        agreed = torch.tensor([speedup], dtype=torch.float64)
        dist.all_reduce(agreed, op=dist.ReduceOp.MIN)
        speedup = float(agreed.item())
    return speedup


def _time_probe() -> float:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 128, 16, 16, generator=g).to(memory_format=torch.channels_last)
    w1 = (torch.randn(64, 128, 3, 3, generator=g) * 0.03).requires_grad_()
    w2 = (torch.randn(32, 64, 3, 3, generator=g) * 0.05).requires_grad_()
    seconds: dict[bool, list[float]] = {False: [], True: []}
    for round_ in range(PROBE_ROUNDS + 1):
        for bf16 in (False, True):
            t0 = time.perf_counter()
            _probe_step(x, w1, w2, bf16)
            if round_:  # the first round builds the kernels
                seconds[bf16].append(time.perf_counter() - t0)
    return statistics.median(seconds[False]) / statistics.median(seconds[True])


def resolve(precision: str, device: str | torch.device, log: Callable[[str], None]) -> str:
    """The precision to train with on ``device``: fp32 or bf16. ``auto`` is bf16 where it is
    native and, on a CPU, where the probe (``cpu_bf16_speedup``) finds it at least as fast as
    fp32, with a line to ``log`` saying what the probe measured; an explicit bf16 falls back to
    fp32, with a line to ``log``, where it would be emulated."""
    if precision == "auto":
        if not bf16_native(device):
            return "fp32"
        if torch.device(device).type != "cpu":
            return "bf16"
        speedup = cpu_bf16_speedup()
        chosen = "bf16" if speedup >= 1.0 else "fp32"
        log(f"precision auto: {chosen} (a convolution probe ran bf16 at {speedup:.2f}x fp32's speed on this "
            f"processor; --precision fp32 or bf16 chooses)")
        return chosen
    if precision == "bf16" and not bf16_native(device):
        where = "this processor has neither AVX-512 BF16 nor AMX" if torch.device(device).type == "cpu" \
            else f"device {device} has no native bf16"
        log(f"note: --precision bf16 falls back to fp32: {where}, so bf16 would be emulated and slower")
        return "fp32"
    return precision


def autocast(precision: str, device: torch.device) -> ContextManager[None]:
    """The context the forward passes run in for a resolved ``precision``: bf16 autocast, or
    nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
