"""Building blocks shared by the generator and the discriminator."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .modulated import MODULATED, ModulatedConv2d
from .ops import Conv2d


def actvn(x: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU with slope 0.2, GP-GAN's activation."""
    return F.leaky_relu(x, 0.2)


class ResnetBlock(nn.Module):
    """out = shortcut(x) + 0.1 * conv_1(lrelu(conv_0(lrelu(x)))).

    3x3 convs with hidden width min(fin, fout); the shortcut is a bias-free 1x1 conv when
    fin != fout and the identity otherwise. Parameter names follow GP-GAN.

    ``modulation`` None gives plain convs; "normalised" or "raw" gives
    :class:`ModulatedConv2d` 3x3 convs (GAN memory), the shortcut staying a frozen plain conv.
    """

    def __init__(self, fin: int, fout: int, modulation: str | None = None):
        super().__init__()
        self.fin, self.fout = fin, fout
        hidden = min(fin, fout)
        if modulation is None:
            self.conv_0 = Conv2d(fin, hidden, 3, padding=1)
            self.conv_1 = Conv2d(hidden, fout, 3, padding=1)
        else:
            normalise = modulation == "normalised"
            self.conv_0 = ModulatedConv2d(fin, hidden, 3, 1, normalise)
            self.conv_1 = ModulatedConv2d(hidden, fout, 3, 1, normalise)
        self.learned_shortcut = fin != fout
        if self.learned_shortcut:
            self.conv_s = Conv2d(fin, fout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.conv_s(x) if self.learned_shortcut else x
        dx = self.conv_1(actvn(self.conv_0(actvn(x))))
        return skip + 0.1 * dx


class TaskModule(nn.Module):
    """Shared by the generator and the discriminator: source loading and task parameters.

    A modulated network holds the source as frozen tensors; its task parameters are the
    gamma / beta / dbias of every modulated layer, plus any module listed in
    ``task_modules`` (the discriminator's last Linear).
    """

    modulated: bool = False
    task_modules: tuple[str, ...] = ()
    # task modules that a source does not have (a conditional task's class bias): they keep
    # their own start and are not looked for in the source's state dict
    new_task_modules: tuple[str, ...] = ()

    def task_parameters(self) -> list[nn.Parameter]:
        return [p for _, p in self.named_task_parameters()]

    def named_task_parameters(self) -> list[tuple[str, nn.Parameter]]:
        if not self.modulated:
            return list(self.named_parameters())
        out = []
        for name, mod in self.named_modules():
            if isinstance(mod, MODULATED):
                out += [(f"{name}.{n}", p) for n, p in mod.named_task_parameters()]
            elif name in self.task_modules:
                out += [(f"{name}.{n}", p) for n, p in mod.named_parameters(recurse=False)]
        return out

    def freeze_source(self) -> None:
        """Everything but the task parameters stops receiving gradients."""
        task = {id(p) for p in self.task_parameters()}
        for p in self.parameters():
            p.requires_grad_(id(p) in task)

    @torch.no_grad()
    def load_source(self, source_state: dict[str, torch.Tensor]) -> None:
        """Load a plain (unmodulated) network's state dict; modulated layers start at it."""
        if not self.modulated:
            missing, unexpected = self.load_state_dict(source_state, strict=False)
            left = [k for k in missing if k.rsplit(".", 1)[0] not in self.new_task_modules]
            if left or unexpected:
                raise KeyError(f"source state does not fit: missing {left}, unexpected {unexpected}")
            return
        plain = {}
        for name, mod in self.named_modules():
            if isinstance(mod, MODULATED):
                mod.init_from(source_state[f"{name}.weight"], source_state[f"{name}.bias"])
        mod_names = {n for n, m in self.named_modules() if isinstance(m, MODULATED)}
        for key, val in source_state.items():
            if key.rsplit(".", 1)[0] not in mod_names:
                plain[key] = val
        missing, unexpected = self.load_state_dict(plain, strict=False)
        left = [k for k in missing if k.rsplit(".", 1)[0] not in mod_names
                and k.rsplit(".", 1)[0] not in self.new_task_modules]
        if left or unexpected:
            raise KeyError(f"source state does not fit: missing {left}, unexpected {unexpected}")

    def task_state_dict(self) -> dict[str, torch.Tensor]:
        return {n: p.detach() for n, p in self.named_task_parameters()}

    @torch.no_grad()
    def load_task_state(self, state: dict[str, torch.Tensor]) -> None:
        params = dict(self.named_task_parameters())
        if set(state) != set(params):
            missing, extra = sorted(set(params) - set(state)), sorted(set(state) - set(params))
            raise KeyError(f"task state does not fit: missing {missing[:3]}, unexpected {extra[:3]}")
        for n, p in params.items():
            p.copy_(state[n])
