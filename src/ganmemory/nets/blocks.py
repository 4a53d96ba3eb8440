"""Building blocks shared by the generator and the discriminator."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def actvn(x: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU with slope 0.2, GP-GAN's activation."""
    return F.leaky_relu(x, 0.2)


class ResnetBlock(nn.Module):
    """out = shortcut(x) + 0.1 * conv_1(lrelu(conv_0(lrelu(x)))).

    3x3 convs with hidden width min(fin, fout); the shortcut is a bias-free 1x1 conv when
    fin != fout and the identity otherwise. Parameter names follow GP-GAN.
    """

    def __init__(self, fin: int, fout: int):
        super().__init__()
        self.fin, self.fout = fin, fout
        hidden = min(fin, fout)
        self.conv_0 = nn.Conv2d(fin, hidden, 3, padding=1)
        self.conv_1 = nn.Conv2d(hidden, fout, 3, padding=1)
        self.learned_shortcut = fin != fout
        if self.learned_shortcut:
            self.conv_s = nn.Conv2d(fin, fout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.conv_s(x) if self.learned_shortcut else x
        dx = self.conv_1(actvn(self.conv_0(actvn(x))))
        return skip + 0.1 * dx
