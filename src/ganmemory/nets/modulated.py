"""Modulated layers: a frozen source kernel, reshaped per task by small gamma / beta / bias.

For a source 3x3 kernel W of shape [Co, Ci, k, k] (docs/method.md, section 3)::

    mu, sigma = mean and unbiased std of W over the k x k positions       # [Co, Ci]
    W_n       = (W - mu) / sigma                                           # stored, frozen
    W_task    = gamma * W_n + beta       (gamma, beta: [Co, Ci], broadcast over k x k)
    b_task    = b + dbias                (dbias: [Co])

with gamma = sigma, beta = mu, dbias = 0 at the start, so a new task begins exactly at the
source.

Several tasks at once: when the task tensors carry a leading task dimension T (as given by
``torch.func.functional_call`` with stacked task states), the layer reads its input batch as
sample-major, row ``i * T + t`` holding task t's copy of sample i, and applies every task's
kernel in one grouped convolution (one batched matmul for the Linear). In that order the
grouped convolution needs no copy: [n * T, C, H, W] is viewed as [n, T * C, H, W]. The first Linear (W: [out, in]) is normalised over its input dimension, with gamma,
beta of length ``out``. With ``normalise=False`` the kernel is stored as is and gamma = 1,
beta = 0 at the start: the same starting function, as the authors' discriminator uses.

Speed: inside :func:`kernels_built_once` each layer builds its kernel once and every
forward call reuses it, so a training step builds the generator's kernels once (not once per
call) and the discriminator's once per network state. Convolutions on tiny maps take the
routes of :func:`ops.same_conv2d` (a Linear on the centre tap at 1x1, im2col at 2x2).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .ops import routed, same_conv2d


def _normalise(w: torch.Tensor, dims: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    mu = w.mean(dim=dims, keepdim=True)
    sigma = w.std(dim=dims, keepdim=True, unbiased=True).clamp_min(1e-12)
    return (w - mu) / sigma, mu, sigma


LOWRANK_SUFFIX = "_lowrank"  # a factorised gamma / beta lives in the submodule NAME + this


def lowrank_key(owner: str) -> str:
    """The matrix a factorised submodule trains: "block.conv_0.gamma_lowrank" -> "block.conv_0.gamma"."""
    return owner.removesuffix(LOWRANK_SUFFIX)


class LowRankDelta(nn.Module):
    """A task matrix trained in accumulated bases (docs/method.md, section 4, ``learn --lowrank``)::

        M = start + U diag(s) V^T + R

    ``start`` [Co, Ci] is where the task begins (the source's gamma or beta), ``U`` [Co, K] and
    ``V`` [Ci, K] are the bank's basis columns (frozen), ``s`` [K] is trained and ``R`` [Co, Ci]
    is a residual trained from zero. After training, R's leading singular vectors become new
    basis columns (``compress.fold_residual``).
    """

    def __init__(self, start: torch.Tensor, u: torch.Tensor, v: torch.Tensor, s0: torch.Tensor):
        super().__init__()
        self.register_buffer("start", start.detach().clone())
        self.register_buffer("u", u.to(start.dtype).clone())
        self.register_buffer("v", v.to(start.dtype).clone())
        self.s = nn.Parameter(s0.to(start.dtype).clone())
        self.r = nn.Parameter(torch.zeros_like(start))

    def forward(self) -> torch.Tensor:
        return torch.addmm(self.start + self.r, self.u * self.s, self.v.T)  # [Co, Ci]


class _TaskKernel(torch.autograd.Function):
    """gamma * W_n + beta over the k x k taps, with the backward reduced straight to gamma and
    beta: one product and two sums. Autograd's addcmul backward also scales the whole
    [Co, Ci, k, k] kernel by addcmul's scalar (1) on every backward. Part of the 1.23-1.25x
    step-time gain at 64 px in BENCHMARKS.md ("Training step: the authors' iteration against
    ours")."""

    @staticmethod
    def forward(ctx, gamma: torch.Tensor, beta: torch.Tensor, weight_n: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(weight_n)
        return torch.addcmul(beta[..., None, None], gamma[..., None, None], weight_n)  # [(T,) Co, Ci, k, k]

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        (weight_n,) = ctx.saved_tensors
        grad = grad.contiguous()
        d_gamma = (grad * weight_n).sum((-2, -1)) if ctx.needs_input_grad[0] else None
        d_beta = grad.sum((-2, -1)) if ctx.needs_input_grad[1] else None
        return d_gamma, d_beta, None


class ModulatedConv2d(nn.Module):
    """A conv whose kernel is gamma * W_n + beta over a frozen (normalised) source kernel.

    ``factorise`` trains gamma and beta as :class:`LowRankDelta` instead of whole matrices.
    """

    def __init__(self, fin: int, fout: int, kernel_size: int = 3, padding: int = 1, normalise: bool = True):
        super().__init__()
        self.padding, self.normalise = padding, normalise
        k = kernel_size
        self.register_buffer("weight_n", torch.zeros(fout, fin, k, k))
        self.register_buffer("bias_src", torch.zeros(fout))
        self.gamma = nn.Parameter(torch.ones(fout, fin))
        self.beta = nn.Parameter(torch.zeros(fout, fin))
        self.dbias = nn.Parameter(torch.zeros(fout))
        self.built: tuple[torch.Tensor, torch.Tensor] | None = None  # see kernels_built_once

    @torch.no_grad()
    def init_from(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Freeze a source kernel and start the task parameters at the source function."""
        if self.normalise:
            w_n, mu, sigma = _normalise(weight, (2, 3))
            self.weight_n.copy_(w_n)
            self.gamma.copy_(sigma[..., 0, 0])
            self.beta.copy_(mu[..., 0, 0])
        else:
            self.weight_n.copy_(weight)
            self.gamma.fill_(1.0)
            self.beta.zero_()
        self.bias_src.copy_(bias)
        self.dbias.zero_()

    def factorise(self, name: str, u: torch.Tensor, v: torch.Tensor, s0: torch.Tensor) -> None:
        """Train ``name`` ("gamma" or "beta") as its current value + U diag(s) V^T + R; the
        whole matrix stops being a task parameter (call the network's ``freeze_source``)."""
        setattr(self, name + LOWRANK_SUFFIX, LowRankDelta(getattr(self, name).detach(), u, v, s0))

    def factors(self, name: str) -> LowRankDelta | None:
        return getattr(self, name + LOWRANK_SUFFIX, None)

    def matrix(self, name: str) -> torch.Tensor:
        f = self.factors(name)
        return f() if f is not None else getattr(self, name)

    def named_task_parameters(self) -> list[tuple[str, nn.Parameter]]:
        out = []
        for name in ("gamma", "beta"):
            f = self.factors(name)
            out += [(f"{name}_lowrank.s", f.s), (f"{name}_lowrank.r", f.r)] if f is not None \
                else [(name, getattr(self, name))]
        return out + [("dbias", self.dbias)]

    def kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.built is not None:
            return self.built
        gamma, beta = self.matrix("gamma"), self.matrix("beta")
        w = _TaskKernel.apply(gamma, beta, self.weight_n) if routed() else \
            torch.addcmul(beta[..., None, None], gamma[..., None, None], self.weight_n)
        return w, self.bias_src + self.dbias  # [(T,) Co, Ci, k, k], [(T,) Co]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.kernel()
        if w.dim() == 4:
            return same_conv2d(x, w, b, self.padding)
        t, co, ci, k, _ = w.shape
        nt, _, h, wd = x.shape
        assert nt % t == 0, "the batch must hold every task's copy of each sample"
        g = x.reshape(nt // t, t * ci, h, wd)  # [n, T*Ci, H, W], a view
        y = F.conv2d(g, w.reshape(t * co, ci, k, k), b.reshape(t * co), padding=self.padding, groups=t)
        return y.reshape(nt, co, *y.shape[2:])  # [n*T, Co, H, W], a view


class ModulatedLinear(nn.Module):
    """A Linear whose weight is gamma * W_n + beta, W_n normalised over the input dimension."""

    def __init__(self, fin: int, fout: int):
        super().__init__()
        self.register_buffer("weight_n", torch.zeros(fout, fin))
        self.register_buffer("bias_src", torch.zeros(fout))
        self.gamma = nn.Parameter(torch.ones(fout))
        self.beta = nn.Parameter(torch.zeros(fout))
        self.dbias = nn.Parameter(torch.zeros(fout))
        self.built: tuple[torch.Tensor, torch.Tensor] | None = None  # see kernels_built_once

    @torch.no_grad()
    def init_from(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        w_n, mu, sigma = _normalise(weight, (1,))
        self.weight_n.copy_(w_n)
        self.gamma.copy_(sigma[:, 0])
        self.beta.copy_(mu[:, 0])
        self.bias_src.copy_(bias)
        self.dbias.zero_()

    def named_task_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return list(self.named_parameters(recurse=False))

    def kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.built is not None:
            return self.built
        w = torch.addcmul(self.beta[..., None], self.gamma[..., None], self.weight_n)  # [(T,) out, in]
        return w, self.bias_src + self.dbias  # [(T,) out]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.kernel()
        if w.dim() == 2:
            return F.linear(x, w, b)
        t = w.shape[0]
        xs = x.reshape(x.shape[0] // t, t, x.shape[1])  # [n, T, in]
        return (torch.einsum("nti,toi->nto", xs, w) + b).reshape(x.shape[0], -1)  # [n*T, out]


class ColourAffine(nn.Module):
    """A task's colour transform of the generator's output: x -> A x + b per pixel, A [3, 3]
    starting at the identity and b [3] at zero (the source's colours). Twelve numbers that can
    turn the source's white backgrounds black or its colours grey in one step.

    With a leading task dimension T on A and b (stacked task states), the input is read
    sample-major as in :class:`ModulatedConv2d`: row i * T + t is task t's copy of sample i."""

    def __init__(self) -> None:
        super().__init__()
        self.matrix = nn.Parameter(torch.eye(3))
        self.bias = nn.Parameter(torch.zeros(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [N, 3, H, W]
        if self.matrix.dim() == 2:
            return torch.einsum("oc,nchw->nohw", self.matrix, x) + self.bias[:, None, None]
        t = self.matrix.shape[0]
        xs = x.reshape(x.shape[0] // t, t, *x.shape[1:])  # [n, T, 3, H, W]
        y = torch.einsum("toc,ntchw->ntohw", self.matrix, xs) + self.bias[None, :, :, None, None]
        return y.reshape(x.shape)


MODULATED = (ModulatedConv2d, ModulatedLinear)


@contextmanager
def kernels_built_once(*networks: nn.Module) -> Iterator[None]:
    """Within the block, every modulated layer of ``networks`` uses the kernel it builds on entry.

    Valid only while the task parameters stay as they are: one network state within one
    training step. Kernels are built with autograd on, so calls under ``torch.no_grad`` reuse
    them freely and one backward reaches gamma / beta through the single, shared build. A
    network without modulated layers is left alone.
    """
    layers = [m for net in networks for m in net.modules() if isinstance(m, MODULATED)]
    with torch.enable_grad():
        for layer in layers:
            layer.built = None
            layer.built = layer.kernel()
    try:
        yield
    finally:
        for layer in layers:
            layer.built = None
