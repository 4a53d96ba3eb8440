"""Mixed precision: bf16 autocast for the networks' forward and backward passes.

``TrainConfig.precision`` is ``"auto"`` (the default), ``"fp32"`` or ``"bf16"``. ``auto`` is bf16
where the device computes it natively and fp32 elsewhere; the precision that ran is what a task,
a checkpoint or a source stores.

Under ``TrainConfig.precision == "bf16"`` the convolutions and matrix products of G and D run in
bfloat16; everything that decides stability stays in float32: the parameters and Adam's state,
the EMA, the logits the losses read, R1's input gradient and its norm. Sampling from a bank is
always float32, so old tasks stay bit-identical whatever precision trained them.

bf16 pays only where the hardware has it: on a CPU, AVX-512 BF16 or AMX; on a GPU, compute
capability 8.0 or newer. Elsewhere PyTorch emulates it, slower than float32, so an explicit
``bf16`` falls back to float32 with one line saying so (``resolve``).
"""

from __future__ import annotations

import contextlib
import platform
from pathlib import Path
from typing import Callable, ContextManager

import torch

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


def resolve(precision: str, device: str | torch.device, log: Callable[[str], None]) -> str:
    """The precision to train with on ``device``: fp32 or bf16. ``auto`` is bf16 where it is
    native; an explicit bf16 falls back to fp32, with a line to ``log``, where it would be emulated."""
    if precision == "auto":
        return "bf16" if bf16_native(device) else "fp32"
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
