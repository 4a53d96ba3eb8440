"""Exponential moving average of generator weights."""

from __future__ import annotations

import math

import torch
from torch import nn


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, beta: float) -> None:
    """ema <- beta * ema + (1 - beta) * model, for every parameter the model trains.

    Frozen parameters and buffers (a GAN memory's source) are equal in both and left alone.
    """
    pairs = [(e, m) for e, m in zip(ema.parameters(), model.parameters(), strict=True) if m.requires_grad]
    if pairs:
        e_params, m_params = zip(*pairs)
        torch._foreach_lerp_(list(e_params), list(m_params), 1.0 - beta)


def ema_beta_at(step: int, beta: float, rampup: float) -> float:
    """The EMA decay for the update after ``step`` finished steps (``step`` >= 1).

    Without ramp-up (``rampup`` = 0, GP-GAN's setting) it is ``beta`` at every step. With it,
    as StyleGAN2-ADA does, the half-life grows with the run: at step t it is
    min(half_life(beta), rampup * t) steps, so the EMA weighs roughly the last ``rampup`` share
    of the run and a short run is sampled from what it learned, not from its start::

        beta_t = 0.5 ** (1 / min(half_life(beta), rampup * t))

    A fixed 0.999 instead keeps 0.999^t of the starting weights: 61 % after 500 steps."""
    if rampup <= 0:
        return beta
    half_life = min(half_life_from_beta(beta), rampup * step) if beta > 0 else 0.0
    return beta_from_half_life(half_life)


def beta_from_half_life(half_life_steps: float) -> float:
    """The beta whose weight on a step halves after ``half_life_steps`` steps (0.999 ~ 693)."""
    return 0.5 ** (1.0 / half_life_steps) if half_life_steps > 0 else 0.0


def half_life_from_beta(beta: float) -> float:
    return math.log(0.5) / math.log(beta) if 0 < beta < 1 else 0.0
