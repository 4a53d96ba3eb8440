"""Which generator blocks' truncation costs a compressed task its score.

    python benchmarks/compression_layers.py --bank runs/sequence_d05f/bank --task mnist --out runs/compression_layers

Per-task compression (``ganmemory compress``) replaces every gamma / beta matrix of a task by a
truncated SVD holding ``--energy`` of its sum(s^2), stored in fp16. Here the truncation is
applied to chosen blocks only, the rest kept whole, and each variant is scored like
``compression.py`` does (FD-EL0 against the task's own data, same latents; not FID). For every
variant the script also saves 32 samples (OUT/TASK_VARIANT.png) and reports two statistics of
those samples' mid-tone pixels (mean grey level 40-180): how many there are, which grows as
strokes blur, and how far green and blue sit above red there, a colour cast on grey images.
Writes OUT/TASK_layers.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ganmemory.atomic import atomic_write_json
from ganmemory.compress import is_modulation_matrix, lowrank
from ganmemory.evaluate import Scorer
from ganmemory.images import save_grid, to_uint8
from ganmemory.memory import MemoryBank
from ganmemory.source import latents


def variants(n_blocks: int) -> dict[str, list[int]]:
    """Variant name -> the blocks truncated."""
    out = {"none": [], "all": list(range(n_blocks))}
    out.update({f"only_{i}": [i] for i in range(n_blocks)})
    out.update({f"first_{k}": list(range(k)) for k in range(2, n_blocks)})
    return out


def truncate(G: torch.nn.Module, blocks: list[int], energy: float) -> int:
    """Truncate G's gamma / beta matrices in ``blocks`` in place, as per-task fp16 compression
    stores them; returns the matrix entries still kept whole."""
    whole = 0
    prefixes = tuple(f"resnet_{i}_0." for i in blocks)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if not is_modulation_matrix(name, p):
                continue
            if name.startswith(prefixes):
                a, b = lowrank(p.float(), energy)
                if a.numel() + b.numel() < p.numel():  # else compression keeps it whole too
                    p.copy_(a.half().float() @ b.half().float().T)
                    continue
            whole += p.numel()
    return whole


def midtone_stats(x: torch.Tensor) -> dict[str, float]:
    """Count of mid-tone pixels and the green / blue excess over red on them."""
    img = torch.from_numpy(to_uint8(x)).double()  # [N, H, W, 3]
    grey = img.mean(-1)
    px = img[(grey > 40) & (grey < 180)]  # [K, 3]
    return {"midtone_pixels": len(px), "green_minus_red": float((px[:, 1] - px[:, 0]).mean()),
            "blue_minus_red": float((px[:, 2] - px[:, 0]).mean())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bank", default="runs/sequence_d05f/bank")
    p.add_argument("--task", default="mnist")
    p.add_argument("--energy", type=float, default=0.9)
    p.add_argument("--n", type=int, default=1000, help="generated and real images per score")
    p.add_argument("--out", default="runs/compression_layers")
    a = p.parse_args()
    out = Path(a.out)
    bank = MemoryBank(a.bank)
    if bank.task_meta(a.task).get("n_classes"):
        raise SystemExit(f"task '{a.task}' is conditional; this probe takes an unconditional task")
    scorer = Scorer(bank.task_meta(a.task)["data"], bank.cfg.resolution, "fd-el0", a.n)
    z = latents(32, bank.cfg.z_dim, 0)
    results = {"bank": a.bank, "task": a.task, "energy": a.energy, "n": a.n, "variants": {}}
    for name, blocks in variants(bank.cfg.n_blocks).items():
        G = bank.task_generator(a.task)
        whole = truncate(G, blocks, a.energy)
        fd = scorer.score(lambda zz, G=G: G(zz, None).clamp(-1, 1), bank.cfg.z_dim, 0)["value"]
        with torch.no_grad():
            x = G(z, None).clamp(-1, 1)
        save_grid(x, out / f"{a.task}_{name}.png", nrow=8, scale=2)
        results["variants"][name] = {"blocks_truncated": blocks, "matrix_entries_whole": whole, "FD-EL0": fd,
                                     **midtone_stats(x)}
        print(name, json.dumps(results["variants"][name]), flush=True)
    atomic_write_json(out / f"{a.task}_layers.json", results)


if __name__ == "__main__":
    main()
