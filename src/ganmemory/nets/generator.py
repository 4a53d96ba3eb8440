"""The GP-GAN ResNet generator (docs/method.md, section 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ResnetBlock, TaskModule, actvn
from .config import PAPER_LAYOUT, NetConfig, TaskLayout
from .modulated import ColourAffine, ModulatedConv2d, ModulatedLinear
from .ops import Conv2d


class Generator(TaskModule):
    """z [N, z_dim], y [N] -> images [N, 3, R, R].

    Linear -> (16 nf or the first multiplier) x s0 x s0 -> residual blocks with nearest x2
    upsampling before every block but the first -> lrelu -> 7x7 conv -> tanh or identity.
    At 256 px / nf 64 the parameter names and shapes are those of GP-GAN's ``resnet4``.

    With ``modulated=True`` (GAN memory) the Linear and every block's 3x3 convs are
    modulated over the frozen source (call ``load_source``); the embedding, the shortcuts and
    the output conv stay frozen.

    ``n_classes`` > 0 makes the generator class-conditional over an unconditional source
    (docs/method.md, section 5): a bias on the Linear's output, ``class_bias(one_hot(y))`` (a bias-free
    Linear from the one-hot class, zero at the start, so every class starts at the source), and
    the source embedding always sees the source's label 0. Modulated, the class bias belongs to
    the task; plain (MeRGAN's baseline), it trains with everything else.
    """

    def __init__(self, cfg: NetConfig, modulated: bool = False, n_classes: int = 0,
                 layout: TaskLayout = PAPER_LAYOUT):
        super().__init__()
        self.cfg, self.modulated, self.n_classes, self.layout = cfg, modulated, n_classes, layout
        added = []
        nf, m = cfg.nf, cfg.mults
        self.embedding = nn.Embedding(cfg.nlabels, cfg.embed_dim)
        fc_in, fc_out = cfg.z_dim + cfg.embed_dim, m[0] * nf * cfg.s0 * cfg.s0
        self.fc = ModulatedLinear(fc_in, fc_out) if modulated else nn.Linear(fc_in, fc_out)
        if n_classes:
            self.class_bias = nn.Linear(n_classes, fc_out, bias=False)
            nn.init.zeros_(self.class_bias.weight)
            added.append("class_bias")
        for i in range(cfg.n_blocks):
            block = ResnetBlock(m[i] * nf, m[i + 1] * nf, "normalised" if modulated else None)
            self.add_module(f"resnet_{i}_0", block)
        self.conv_img = ModulatedConv2d(m[-1] * nf, 3, 7, 3) if modulated and layout.output_conv else \
            Conv2d(m[-1] * nf, 3, 7, padding=3)
        if modulated and layout.colour:
            self.colour = ColourAffine()
            added.append("colour")
        self.task_modules = self.new_task_modules = tuple(added)
        if modulated:
            self.freeze_source()

    def blocks(self) -> list[ResnetBlock]:
        return [getattr(self, f"resnet_{i}_0") for i in range(self.cfg.n_blocks)]

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        cfg = self.cfg
        if y is None:
            y = torch.zeros(z.shape[0], dtype=torch.long, device=z.device)
        if self.n_classes:
            source_y = torch.zeros_like(y)
            h = self.fc(torch.cat([z, self.embedding(source_y)], dim=1))
            h = h + self.class_bias(F.one_hot(y, self.n_classes).to(h.dtype))  # [N, C0 * s0 * s0]
        else:
            h = self.fc(torch.cat([z, self.embedding(y)], dim=1))
        h = h.view(z.shape[0], cfg.mults[0] * cfg.nf, cfg.s0, cfg.s0)  # [N, C0, s0, s0]
        for i, block in enumerate(self.blocks()):
            if i > 0:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = block(h)
        x = self.conv_img(actvn(h))  # [N, 3, R, R]
        if hasattr(self, "colour"):
            x = self.colour(x)
        x = x.contiguous()  # the convolutions may leave it channels-last (nets/ops.py)
        return torch.tanh(x) if cfg.output == "tanh" else x
