"""Pure loss functions and regularisers; each docstring states its formula and constants."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def d_loss_nonsaturating(real_logits: torch.Tensor, fake_logits: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Discriminator's binary cross-entropy: (mean softplus(-D(x)), mean softplus(D(G(z))))."""
    return F.softplus(-real_logits).mean(), F.softplus(fake_logits).mean()


def g_loss_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: mean softplus(-D(G(z)))."""
    return F.softplus(-fake_logits).mean()


def mode_seeking_penalty(fake: torch.Tensor, z: torch.Tensor, eps: float = 1e-5,
                         mean_over_ranks: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """MSGAN's mode-seeking term (Mao et al. 2019): 1 / (mean|x_a - x_b| / mean|z_a - z_b| + eps).

    Row i of the first half of the batch is paired with row i of the second half; the caller
    gives each pair the same label. Minimising it pushes two latents' images apart in
    proportion to how far apart the latents are, against a generator that maps a class's
    latents to one image. Computed in float32 whatever ``fake``'s dtype.

    Over several processes each holds an equal number of whole pairs, and ``mean_over_ranks``
    averages a detached scalar over them, so both means are the global batch's. The gradient
    flows through this process's own mean only: once the caller averages gradients over the
    processes, that is the gradient of the global term.
    """
    half = fake.shape[0] // 2
    if half == 0:
        raise ValueError("the mode-seeking term needs a batch of at least 2")
    fake, z = fake.float(), z.float()
    d_x = (fake[:half] - fake[half:2 * half]).abs().mean()
    d_z = (z[:half] - z[half:2 * half]).abs().mean()
    if mean_over_ranks is not None:
        d_x = d_x + (mean_over_ranks(d_x.detach()) - d_x).detach()  # the global value, the local gradient
        d_z = mean_over_ranks(d_z.detach())
    return 1.0 / (d_x / d_z + eps)


def r1_penalty(real_logits: torch.Tensor, real_x: torch.Tensor) -> torch.Tensor:
    """R1 = mean_i ||grad_x D(x_i)||^2 on real data, without the 1/2 factor (GP-GAN's convention).

    The caller multiplies by its weight (10 by default). ``real_x`` must require grad and
    ``real_logits`` must come from it; the graph is kept so the penalty can be back-propagated.
    """
    (grad,) = torch.autograd.grad(real_logits.sum(), real_x, create_graph=True)
    return grad.pow(2).reshape(grad.shape[0], -1).sum(1).mean()


def singular_value_penalty(s: torch.Tensor) -> torch.Tensor:
    """sum_i |s_i| (0.1 + sigmoid(10 i / n)) over a task's n basis coefficients (docs/method.md
    section 4): trailing coefficients cost up to about 11x the leading ones, so training
    leans on the earliest bases. The caller multiplies by its weight (0.01 by default)."""
    n = s.shape[0]
    if n == 0:
        return s.sum()
    i = torch.arange(n, dtype=s.dtype, device=s.device)
    return (s.abs() * (0.1 + torch.sigmoid(10 * i / n))).sum()
