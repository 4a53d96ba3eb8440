"""Multi-process training with torch.distributed (launched by ``torchrun``).

Each of N processes computes 1/N of every global batch and the gradients are averaged with
one all-reduce per optimizer step: gloo on CPU, NCCL on GPU. The global batch, its order and
every random draw are those of a single-process run, so the task file is the same whatever N
is, up to the order of floating-point sums.

We average gradients with ``all_reduce`` rather than wrapping the networks in
``DistributedDataParallel``: DDP's reducer does not support R1's double backward, and the
discriminator is frozen during the generator step, which DDP cannot follow. The arithmetic is
the same as DDP's (a mean of the ranks' gradients).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    device: str = "cpu"

    @property
    def is_writer(self) -> bool:
        """Only rank 0 writes files."""
        return self.rank == 0


SINGLE = DistContext()


def setup(device: str = "cpu") -> DistContext:
    """Join the process group torchrun describes in the environment; a no-op for one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(0, 1, device)
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend)
    rank = dist.get_rank()
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    return DistContext(rank, world, device)


def teardown() -> None:
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def average_gradients(params: list[torch.Tensor], world_size: int) -> None:
    """grad <- mean over ranks of grad, in one flat all-reduce."""
    if world_size <= 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def mean_over_ranks(t: torch.Tensor, world_size: int) -> torch.Tensor:
    """The mean over ranks of a tensor of the same shape on every rank (a new tensor; no gradient)."""
    out = t.detach().clone()
    if world_size > 1:
        dist.all_reduce(out)
    return out / world_size


def any_rank(flag: bool, ctx: DistContext) -> bool:
    """True on every rank if ``flag`` is true on any of them (one tiny all-reduce), so all
    ranks take the same branch; ``flag`` itself for one process."""
    if ctx.world_size <= 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
