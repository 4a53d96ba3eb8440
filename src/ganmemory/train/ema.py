"""Exponential moving average of generator weights."""

from __future__ import annotations

import math

import torch
from torch import nn


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, beta: float) -> None:
    """ema <- beta * ema + (1 - beta) * model, for every parameter and floating buffer."""
    e_params = [p for p in ema.parameters()] + [b for b in ema.buffers() if b.is_floating_point()]
    m_params = [p for p in model.parameters()] + [b for b in model.buffers() if b.is_floating_point()]
    assert len(e_params) == len(m_params), "EMA and model differ in structure"
    torch._foreach_lerp_(e_params, m_params, 1.0 - beta)


def beta_from_half_life(half_life_steps: float) -> float:
    """The beta whose weight on a step halves after ``half_life_steps`` steps (0.999 ~ 693)."""
    return 0.5 ** (1.0 / half_life_steps) if half_life_steps > 0 else 0.0


def half_life_from_beta(beta: float) -> float:
    return math.log(0.5) / math.log(beta) if 0 < beta < 1 else 0.0
