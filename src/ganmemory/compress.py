"""Compressing stored tasks after the fact (the paper's Section 4, per-task form).

What is factorised (``of``): by default a task matrix's change from where every task starts,
D = M - start (``CHANGE``; the start is the source's gamma or beta, which the bank rebuilds from
its source, so it costs nothing to store), or the matrix M itself (``MATRIX``, the form of
every file compressed before ``of`` existed). Each gamma or beta of a modulated conv
([Co, Ci]) is replaced by a truncated SVD, D ~ A B^T with A = U_r diag(s_r) ([Co, r]) and
B = V_r ([Ci, r]), where r is the smallest rank whose singular values hold ``energy`` of
sum(s^2), or, given a task's ``budget`` of parameters, the rank ``budget_ranks`` chooses for the
matrix among all of the task's. A matrix is kept whole when the factors would not be smaller, and vectors (biases,
the Linear's gamma / beta) are always kept whole. The start is itself a full-rank matrix (the
per-tap std and mean of the source's kernels), so truncating M cuts into the source as well as
into what the task learned; truncating D cuts only the latter.
A compressed task stores only what sampling needs (the EMA generator's parameters), so it can
be sampled, interpolated and replayed but not resumed.

Shared bases (``compress_shared``): tasks, one after another, grow orthonormal bases U, V per
matrix that the whole bank shares; a task adds the residual's leading singular vectors only
until the bases hold ``energy`` of its matrix (an already explained task adds none) and keeps
the core U^T M V. This is the paper's accumulation done after the fact.

Training in the bases (``learn --lowrank``, docs/method.md, section 4): each generator conv's gamma
and beta train as start + U diag(s) V^T + R (``nets.modulated.LowRankDelta``) over the bank's
trained bases, with a singular-value penalty on s. Afterwards ``fold_residual`` turns R's
leading singular pairs into new basis columns, and the task stores only s (``NAME.sdiag``);
``expand_trained`` rebuilds the matrix from the source's start, the bases and s.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .configs import check_types, config_from_dict
from .errors import GanMemoryError

U_SUFFIX, V_SUFFIX = ".lowrank_a", ".lowrank_b"
# how a compressed task is stored (its metadata's "compressed.mode")
PER_TASK, SHARED, TRAINED = "per-task", "shared", "lowrank-trained"
MODES = (PER_TASK, SHARED, TRAINED)
OVER_BANK_BASES = (SHARED, TRAINED)  # modes whose task needs its bank's bases.safetensors
# what an after-the-fact mode factorised (the metadata's "compressed.of"; absent means MATRIX)
CHANGE, MATRIX = "change", "matrix"
FACTORED = (CHANGE, MATRIX)


def check_of(of: str) -> None:
    if of not in FACTORED:
        raise GanMemoryError(f"--of must be {' or '.join(FACTORED)}, got '{of}'")


def _offset(name: str, starts: dict[str, torch.Tensor] | None) -> torch.Tensor | None:
    """The start a matrix's factors are relative to (None: the factors are the matrix)."""
    if starts is None:
        return None
    if name not in starts:
        raise KeyError(f"no start for '{name}'")
    return starts[name]


def is_modulation_matrix(name: str, t: torch.Tensor) -> bool:
    """Whether a generator task tensor is a conv's gamma or beta matrix [Co, Ci], the only
    tensors that low rank applies to (vectors are always kept whole)."""
    return t.dim() == 2 and name.endswith((".gamma", ".beta"))


def change_lost(full: dict[str, torch.Tensor], compressed: dict[str, torch.Tensor],
                starts: dict[str, torch.Tensor]) -> float:
    """||M_compressed - M||^2 / ||M - start||^2 summed over a generator task's gamma / beta
    matrices (the three dicts under the same names): how much of what the task learned, its
    change from the start, compression threw away. Above 1, the compressed task is farther from
    the trained one than the start itself is."""
    lost = change = 0.0
    for name, start in starts.items():
        if is_modulation_matrix(name, start):
            m = full[name].double()
            lost += float(((compressed[name].double() - m) ** 2).sum())
            change += float(((m - start.double()) ** 2).sum())
    return lost / max(change, 1e-300)


def lowrank(m: torch.Tensor, energy: float | None = None, rank: int | None = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, B) with A @ B.T the best rank-r approximation of ``m``: r is ``rank``, or the smallest
    rank holding ``energy`` of sum(s^2)."""
    if rank is None and not (energy is not None and 0 < energy <= 1):
        raise GanMemoryError(f"--energy must be in (0, 1], got {energy}")
    u, s, vh = torch.linalg.svd(m.double(), full_matrices=False)
    if rank is None:
        cum = torch.cumsum(s ** 2, 0) / (s ** 2).sum().clamp_min(1e-300)
        rank = int(torch.searchsorted(cum, torch.tensor(energy, dtype=cum.dtype) - 1e-12).item()) + 1
    r = min(max(rank, 1), len(s))
    return (u[:, :r] * s[:r]).to(m.dtype), vh[:r].T.contiguous().to(m.dtype)  # [Co, r], [Ci, r]


def _most_factored_rank(m: torch.Tensor) -> int:
    """The highest rank whose factors are still smaller than the matrix (0: none is)."""
    co, ci = m.shape
    return (co * ci - 1) // (co + ci)


def budget_floor(state: dict[str, torch.Tensor]) -> int:
    """The fewest parameters a task state takes in low-rank form: its vectors whole and every
    matrix at rank 1 (or whole, where that is smaller)."""
    return sum(t.numel() if not is_modulation_matrix(name, t) or not _most_factored_rank(t)
               else sum(t.shape) for name, t in state.items())


def _pair_shares(m: torch.Tensor) -> torch.Tensor:
    """Each singular pair's share of ``m``'s sum(s^2)."""
    s2 = torch.linalg.svdvals(m.double()) ** 2
    return s2 / s2.sum() if float(s2.sum()) > 0 else torch.zeros_like(s2)


def _options(m: torch.Tensor) -> list[tuple[int, int | None, float]]:
    """The ways to store ``m``: (parameters, rank or None for whole, share of sum(s^2) kept)."""
    co, ci = m.shape
    cum = torch.cumsum(_pair_shares(m), 0).tolist()
    return [(r * (co + ci), r, cum[r - 1]) for r in range(1, _most_factored_rank(m) + 1)] + [(co * ci, None, 1.0)]


def budget_ranks(matrices: dict[str, torch.Tensor], budget: int) -> dict[str, int | None]:
    """Ranks for ``matrices`` (name -> the [Co, Ci] matrix to factorise) whose factors take at
    most ``budget`` parameters together; None keeps a matrix whole.

    The ranks maximise the sum over matrices of the share of each matrix's own sum(s^2) that it
    keeps: shares, not norms, so a pair that holds much of a small matrix wins over one that
    holds little of a large one, and a small matrix whose remaining pairs cost little more than
    its next one is kept whole (a 32x32 matrix takes 960 parameters at rank 15 and 1,024 whole).
    Every matrix keeps rank 1 at least. Solved exactly, as a knapsack with one choice per
    matrix, by dynamic programming over the budget in units of the costs' common divisor; of
    equal sums the cheaper ranks win."""
    names = list(matrices)
    options = [_options(matrices[n]) for n in names]
    least = sum(min(c for c, _, _ in opts) for opts in options)
    if least > budget:
        raise GanMemoryError(f"a budget of {budget:,} parameters is below the {least:,} that rank 1 takes")
    unit = math.gcd(*(c for opts in options for c, _, _ in opts))
    cap = min(budget, sum(max(c for c, _, _ in opts) for opts in options)) // unit
    best = np.zeros(cap + 1)  # best[b]: the most kept within b units by the matrices so far
    choices = []
    for opts in options:
        new, pick = np.full(cap + 1, -np.inf), np.zeros(cap + 1, dtype=np.int64)
        for o, (c, _, kept) in enumerate(opts):  # cost ascending: on a tie the cheaper stays
            c //= unit
            if c > cap:
                break
            cand = best[: cap + 1 - c] + kept
            better = cand > new[c:]
            new[c:][better], pick[c:][better] = cand[better], o
        best = new
        choices.append(pick)
    b = int(np.argmax(best))  # the cheapest budget that reaches the maximum
    ranks: dict[str, int | None] = {}
    for name, opts, pick in reversed(list(zip(names, options, choices))):
        cost, ranks[name], _ = opts[pick[b]]
        b -= cost // unit
    return {name: ranks[name] for name in names}


SEARCH_STEPS = 6  # bisection halvings of [rank-1 floor, whole]: within 1/64 of that range


def smallest_budget(least: int, whole: int, acceptable: Callable[[int], bool], steps: int = SEARCH_STEPS) -> int:
    """The fewest parameters in [``least``, ``whole``] that ``acceptable`` accepts, found by
    bisection to within (whole - least) / 2**steps (the answer is then the accepted end).

    ``whole`` is taken as accepted without asking: it is the task kept whole. ``acceptable`` is
    assumed to hold from some count upwards (more parameters never worse); where a noisy score
    breaks that, the answer is still a count that was accepted. It is asked at most
    ``steps + 1`` times, ``least`` first."""
    if not least <= whole:
        raise ValueError(f"least {least} above whole {whole}")
    if acceptable(least):
        return least
    lo, hi = least, whole  # lo refused, hi accepted
    for _ in range(steps):
        mid = (lo + hi) // 2
        if mid in (lo, hi):
            break
        lo, hi = (lo, mid) if acceptable(mid) else (mid, hi)
    return hi


def compress_state(state: dict[str, torch.Tensor], energy: float | None = None, dtype: torch.dtype = torch.float32,
                   starts: dict[str, torch.Tensor] | None = None, budget: int | None = None
                   ) -> dict[str, torch.Tensor]:
    """A generator task state (names -> tensors) in low-rank form, cast to ``dtype``. With
    ``starts`` (the task's start, same names) each matrix's change from its start is factorised
    (``CHANGE``); without, the matrix itself (``MATRIX``).

    Either every matrix keeps ``energy`` of its sum(s^2), or the whole state takes at most
    ``budget`` parameters, its vectors whole and the matrices' ranks from ``budget_ranks``."""
    if (energy is None) == (budget is None):
        raise ValueError("give compress_state an energy or a budget")
    factored = {name: t.float() - (0 if (start := _offset(name, starts)) is None else start.float())
                for name, t in state.items() if is_modulation_matrix(name, t)}
    ranks: dict[str, int | None] = {}
    if budget is not None:
        least = budget_floor(state)
        if budget < least:
            raise GanMemoryError(f"a budget of {budget:,} parameters is below the {least:,} this task takes at rank 1")
        ranks = budget_ranks(factored, budget - sum(t.numel() for n, t in state.items() if n not in factored))
    out = {}
    for name, t in state.items():
        if name in factored and (budget is None or ranks[name] is not None):
            a, b = lowrank(factored[name], energy, ranks.get(name))
            if a.numel() + b.numel() < t.numel():
                out[name + U_SUFFIX], out[name + V_SUFFIX] = a.to(dtype), b.to(dtype)
                continue
        out[name] = t.to(dtype)
    return out


def expand_state(state: dict[str, torch.Tensor], starts: dict[str, torch.Tensor] | None = None
                 ) -> dict[str, torch.Tensor]:
    """Inverse of ``compress_state`` (given the same ``starts``) up to the truncation: full
    float32 tensors."""
    out = {}
    for name, t in state.items():
        if name.endswith(V_SUFFIX):
            continue
        if name.endswith(U_SUFFIX):
            base = name[: -len(U_SUFFIX)]
            m = t.float() @ state[base + V_SUFFIX].float().T
            start = _offset(base, starts)
            out[base] = m if start is None else (start.double() + m.double()).float()
        else:
            out[name] = t.float()
    return out


def stored_parameters(state: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() for t in state.values())


# ---------------------------------------------------------------------------- shared bases

CORE_SUFFIX = ".core"


def _projection_error(m: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> float:
    """||M - U U^T M V V^T||^2 for orthonormal U, V: ||M||^2 - ||U^T M V||^2."""
    return float((m ** 2).sum() - ((u.T @ m @ v) ** 2).sum())


def _append_orthonormal(u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """[U, W'] where W' is an orthonormal basis of the part of W orthogonal to U (Gram-Schmidt
    twice, then QR; directions already in U are dropped). The columns of U stay exactly as they
    are, so every earlier task's prefix stays valid."""
    scale = float(w.norm()) or 1.0
    for _ in range(2):
        w = w - u @ (u.T @ w)
    q, r = torch.linalg.qr(w)
    keep = r.diagonal().abs() > 1e-9 * scale
    return torch.cat([u, q[:, keep][:, : u.shape[0] - u.shape[1]]], 1)


def extend_bases(m: torch.Tensor, u: torch.Tensor, v: torch.Tensor, energy: float
                 ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Grow orthonormal bases U [Co, Ku], V [Ci, Kv] until U U^T M V V^T keeps ``energy`` of
    ||M||^2 (docs/method.md, section 4, after the fact): the fewest of the residual's leading singular
    vector pairs are appended (a direction already spanned is skipped, so Ku and Kv may
    differ). Returns (U', V', parameters of the columns added); a matrix the bases already
    explain adds none."""
    if not 0 < energy <= 1:
        raise GanMemoryError(f"--energy must be in (0, 1], got {energy}")
    m = m.double()
    target = (1 - energy) * float((m ** 2).sum()) + 1e-12 * float((m ** 2).sum())
    if u.shape[1] and _projection_error(m, u, v) <= target:
        return u, v, 0
    r_mat = m - u @ (u.T @ m @ v) @ v.T
    a, _, bh = torch.linalg.svd(r_mat, full_matrices=False)

    def grown(r: int) -> tuple[torch.Tensor, torch.Tensor]:
        return _append_orthonormal(u, a[:, :r]), _append_orthonormal(v, bh[:r].T)

    # the bases for r pairs contain those for r - 1, so the error falls with r: bisect for the
    # fewest pairs that reach the target (O(log r) QRs, which matters for 256 px layers)
    lo, hi = 1, a.shape[1]
    while lo < hi:
        mid = (lo + hi) // 2
        if _projection_error(m, *grown(mid)) <= target:
            hi = mid
        else:
            lo = mid + 1
    u2, v2 = grown(lo)
    added = (u2.shape[1] - u.shape[1]) * u.shape[0] + (v2.shape[1] - v.shape[1]) * v.shape[0]
    return u2, v2, added


def compress_shared(state: dict[str, torch.Tensor], bases: dict[str, torch.Tensor], energy: float,
                    dtype: torch.dtype = torch.float32, starts: dict[str, torch.Tensor] | None = None
                    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], int]:
    """A task state over bases shared with earlier tasks. With ``starts``, M below is each
    matrix's change from its start, and the bases span changes (``CHANGE``).

    ``bases`` maps ``NAME.basis_u`` / ``NAME.basis_v`` to float64 orthonormal columns and is
    returned grown. Each gamma / beta matrix M becomes a core C = U^T M V ([Ku, Kv], the
    columns after this task; a full core because the task was not trained in these bases),
    stored as ``NAME.core``; M is kept whole where the core would not be smaller. Returns
    (task state, new bases, parameters of the columns this task added).
    """
    bases = dict(bases)
    out, added_params = {}, 0
    for name, t in state.items():
        if not is_modulation_matrix(name, t):
            out[name] = t.to(dtype)
            continue
        start = _offset(name, starts)
        m = t.double() - (0 if start is None else start.double())
        u = bases.get(name + ".basis_u", torch.zeros(m.shape[0], 0, dtype=torch.float64))
        v = bases.get(name + ".basis_v", torch.zeros(m.shape[1], 0, dtype=torch.float64))
        u, v, added = extend_bases(m, u, v, energy)
        bases[name + ".basis_u"], bases[name + ".basis_v"] = u, v
        added_params += added
        if u.shape[1] * v.shape[1] < m.numel():
            out[name + CORE_SUFFIX] = (u.T @ m @ v).to(dtype)  # [Ku, Kv]
        else:
            out[name] = t.to(dtype)
    return out, bases, added_params


def expand_shared(state: dict[str, torch.Tensor], bases: dict[str, torch.Tensor],
                  starts: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Inverse of ``compress_shared`` (given the same ``starts``) up to the truncation: full
    float32 tensors."""
    out = {}
    for name, t in state.items():
        if not name.endswith(CORE_SUFFIX):
            out[name] = t.float()
            continue
        base = name[: -len(CORE_SUFFIX)]
        ku, kv = t.shape
        try:
            u, v = bases[base + ".basis_u"][:, :ku], bases[base + ".basis_v"][:, :kv]
        except KeyError:
            raise GanMemoryError(f"the shared bases have no columns for '{base}'") from None
        if u.shape[1] < ku or v.shape[1] < kv:
            raise GanMemoryError(f"the shared bases hold too few columns for '{base}' (the task needs {ku} and {kv})")
        start = _offset(base, starts)
        out[base] = (u @ t.double() @ v.T + (0 if start is None else start.double())).float()
    return out


# ---------------------------------------------------------------- trained in the bases

TRAINED_U, TRAINED_V, SDIAG_SUFFIX = ".trained_u", ".trained_v", ".sdiag"


@dataclass(frozen=True)
class LowRankConfig:
    """Options of ``learn --lowrank`` (docs/method.md, section 4)."""

    energy: float = 0.9  # each matrix keeps this fraction of ||M - start||^2 when R is folded into the bases
    penalty: float = 0.01  # weight of the singular-value penalty on s, as the paper
    penalty_every: int = 10  # applied on every Nth generator step, as the paper
    # s starts at 0, so the task starts at the source ("source"), or at the bank's last low-rank
    # task's coefficients ("previous", the paper's choice; it cost emoji +69 % FD-EL0 after
    # fashion-mnist in BENCHMARKS.md, so it is not the default)
    init: str = "source"

    def __post_init__(self) -> None:
        check_types(self)
        if not 0 < self.energy <= 1:
            raise GanMemoryError(f"--lowrank-energy must be in (0, 1], got {self.energy}")
        if self.penalty < 0:
            raise GanMemoryError(f"the low-rank penalty weight must be >= 0, got {self.penalty}")
        if self.penalty_every < 1:
            raise GanMemoryError(f"the low-rank penalty period must be >= 1, got {self.penalty_every}")
        if self.init not in ("previous", "source"):
            raise GanMemoryError(f"--lowrank-init must be previous or source, got '{self.init}'")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LowRankConfig":
        return config_from_dict(cls, d, "low-rank")


def fold_residual(u: torch.Tensor, v: torch.Tensor, s: torch.Tensor, r: torch.Tensor, energy: float
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """After training a task whose matrix is start + U diag(s) V^T + R: the fewest leading
    singular pairs (a_i, sigma_i, b_i) of R such that the dropped tail of R holds at most
    (1 - energy) of ||U diag(s) V^T + R||^2, the task's whole change. Returns (new U columns
    [Co, k], new V columns [Ci, k], the task's coefficients over all K + k columns [K + k]), in
    float64. A task its bases already explain adds no columns (k = 0)."""
    u, v, s, r = u.double(), v.double(), s.double(), r.double()
    delta = (u * s) @ v.T + r
    allowed = (1 - energy) * float((delta ** 2).sum()) + 1e-12 * float((delta ** 2).sum())
    a, sig, bh = torch.linalg.svd(r, full_matrices=False)
    tail = (sig ** 2).flip(0).cumsum(0).flip(0)  # tail[i] = sum_{j >= i} sigma_j^2
    k = int((tail > allowed).sum().item())  # tail is non-increasing: keep pairs 0 .. k-1
    return a[:, :k], bh[:k].T, torch.cat([s, sig[:k]])


def expand_trained(state: dict[str, torch.Tensor], bases: dict[str, torch.Tensor],
                   starts: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The full float32 task state of a task learned with ``--lowrank``: every ``NAME.sdiag``
    [K] becomes start + U[:, :K] diag(s) V[:, :K]^T."""
    out = {}
    for name, t in state.items():
        if not name.endswith(SDIAG_SUFFIX):
            out[name] = t.float()
            continue
        base = name[: -len(SDIAG_SUFFIX)]
        k = t.shape[0]
        u, v = bases.get(base + TRAINED_U), bases.get(base + TRAINED_V)
        if u is None or v is None or u.shape[1] < k or v.shape[1] < k:
            raise GanMemoryError(f"the bank's trained bases hold too few columns for '{base}' (the task needs {k})")
        out[base] = (starts[base].double() + (u[:, :k].double() * t.double()) @ v[:, :k].double().T).float()
    return out
