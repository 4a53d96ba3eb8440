"""The GP-GAN ResNet discriminator (METHOD.md section 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ResnetBlock, actvn
from .config import NetConfig


class Discriminator(nn.Module):
    """images [N, 3, R, R], y [N] -> one logit per image, the one of its label.

    7x7 conv from RGB -> residual blocks (the generator's, mirrored) with 3x3/2 average
    pooling before every block but the first -> lrelu -> Linear to one logit per label.
    """

    def __init__(self, cfg: NetConfig):
        super().__init__()
        self.cfg = cfg
        nf, m = cfg.nf, cfg.mults[::-1]
        self.conv_img = nn.Conv2d(3, m[0] * nf, 7, padding=3)
        for i in range(cfg.n_blocks):
            self.add_module(f"resnet_{i}_0", ResnetBlock(m[i] * nf, m[i + 1] * nf))
        self.fc = nn.Linear(m[-1] * nf * cfg.s0 * cfg.s0, cfg.nlabels)

    def blocks(self) -> list[ResnetBlock]:
        return [getattr(self, f"resnet_{i}_0") for i in range(self.cfg.n_blocks)]

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        n = x.shape[0]
        if y is None:
            y = torch.zeros(n, dtype=torch.long, device=x.device)
        h = self.conv_img(x)
        for i, block in enumerate(self.blocks()):
            if i > 0:
                h = F.avg_pool2d(h, 3, stride=2, padding=1)
            h = block(h)
        logits = self.fc(actvn(h.reshape(n, -1)))  # [N, nlabels]
        return logits.gather(1, y.view(n, 1)).squeeze(1)  # [N]
