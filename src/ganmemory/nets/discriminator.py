"""The GP-GAN ResNet discriminator (docs/method.md, section 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ResnetBlock, TaskModule, actvn
from .config import PAPER_LAYOUT, NetConfig, TaskLayout
from .modulated import ModulatedConv2d
from .ops import Conv2d


class Discriminator(TaskModule):
    """images [N, 3, R, R], y [N] -> one logit per image, the one of its label.

    7x7 conv from RGB -> residual blocks (the generator's, mirrored) with 3x3/2 average
    pooling before every block but the first -> lrelu -> Linear to one logit per label.

    With ``modulated=True`` (GAN memory) the blocks' 3x3 convs are modulated over the frozen
    source kernels as they are (gamma = 1, beta = 0 at the start) and the last Linear belongs
    to the task; the input conv and the shortcuts stay frozen.

    ``n_classes`` > 0 (a class-conditional task, docs/method.md, section 5): the task's last Linear
    gives one logit per class of the task, each starting as the source's single logit.
    """

    task_modules = ("fc",)

    def __init__(self, cfg: NetConfig, modulated: bool = False, n_classes: int = 0,
                 layout: TaskLayout = PAPER_LAYOUT):
        super().__init__()
        self.cfg, self.modulated, self.n_classes, self.layout = cfg, modulated, n_classes, layout
        nf, m = cfg.nf, cfg.mults[::-1]
        self.conv_img = ModulatedConv2d(3, m[0] * nf, 7, 3, normalise=False) if modulated and layout.input_conv \
            else Conv2d(3, m[0] * nf, 7, padding=3)
        for i in range(cfg.n_blocks):
            block = ResnetBlock(m[i] * nf, m[i + 1] * nf, "raw" if modulated else None)
            self.add_module(f"resnet_{i}_0", block)
        self.fc = nn.Linear(m[-1] * nf * cfg.s0 * cfg.s0, n_classes or cfg.nlabels)
        if modulated:
            self.freeze_source()

    @torch.no_grad()
    def load_source(self, source_state: dict[str, torch.Tensor]) -> None:
        """As ``TaskModule.load_source``; a conditional task's fc repeats the source's logit row
        (label 0) once per class."""
        if self.n_classes:
            source_state = dict(source_state)
            for key in ("fc.weight", "fc.bias"):
                row = source_state[key][:1]
                source_state[key] = row.expand(self.n_classes, *row.shape[1:]).clone()
        super().load_source(source_state)

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
