"""Compressing stored tasks after the fact (the paper's Section 4, per-task form).

Each task matrix gamma or beta of a modulated conv ([Co, Ci]) is replaced by a truncated SVD,
M ~ A B^T with A = U_r diag(s_r) ([Co, r]) and B = V_r ([Ci, r]), where r is the smallest rank
whose singular values hold ``energy`` of sum(s^2). A matrix is kept whole when the factors
would not be smaller, and vectors (biases, the Linear's gamma / beta) are always kept whole.
A compressed task stores only what sampling needs (the EMA generator's parameters), so it can
be sampled, interpolated and replayed but not resumed.
"""

from __future__ import annotations

import torch

from .errors import GanMemoryError

U_SUFFIX, V_SUFFIX = ".lowrank_a", ".lowrank_b"


def lowrank(m: torch.Tensor, energy: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, B) with A @ B.T the best rank-r approximation holding ``energy`` of sum(s^2)."""
    if not 0 < energy <= 1:
        raise GanMemoryError(f"--energy must be in (0, 1], got {energy}")
    u, s, vh = torch.linalg.svd(m.double(), full_matrices=False)
    cum = torch.cumsum(s ** 2, 0) / (s ** 2).sum().clamp_min(1e-300)
    r = int(torch.searchsorted(cum, torch.tensor(energy, dtype=cum.dtype) - 1e-12).item()) + 1
    r = min(max(r, 1), len(s))
    return (u[:, :r] * s[:r]).to(m.dtype), vh[:r].T.contiguous().to(m.dtype)  # [Co, r], [Ci, r]


def compress_state(state: dict[str, torch.Tensor], energy: float, dtype: torch.dtype = torch.float32
                   ) -> dict[str, torch.Tensor]:
    """A generator task state (names -> tensors) in low-rank form, cast to ``dtype``."""
    out = {}
    for name, t in state.items():
        if t.dim() == 2 and name.endswith((".gamma", ".beta")):
            a, b = lowrank(t.float(), energy)
            if a.numel() + b.numel() < t.numel():
                out[name + U_SUFFIX], out[name + V_SUFFIX] = a.to(dtype), b.to(dtype)
                continue
        out[name] = t.to(dtype)
    return out


def expand_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of ``compress_state`` up to the truncation: full float32 tensors."""
    out = {}
    for name, t in state.items():
        if name.endswith(V_SUFFIX):
            continue
        if name.endswith(U_SUFFIX):
            base = name[: -len(U_SUFFIX)]
            out[base] = (t.float() @ state[base + V_SUFFIX].float().T)
        else:
            out[name] = t.float()
    return out


def stored_parameters(state: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() for t in state.values())
