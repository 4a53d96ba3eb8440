"""Same-size convolutions routed to the fastest exact form for the map they meet.

The networks' 3x3 convs run on maps from the output resolution down to 1x1 (or 2x2). On tiny
maps the CPU's convolution kernels are far from the matmul peak, so two cases take another
route to the same sums (float rounding aside):

- a 1x1 map only ever meets the kernel's centre tap: a Linear on that tap;
- a map of at most ``UNFOLD_MAX_PIXELS`` pixels on the CPU: one matrix product over the
  unfolded patches (im2col). At 2x2 with 512 channels this is 1.6-2x faster than ``F.conv2d``,
  forward and backward, at batch 16 to 256 on an AMD EPYC; at 4x4 it is not, so the route stops
  at 2x2 (``benchmarks/step_speed.py`` measures the whole step).

Every other case is ``F.conv2d``; on the CPU in channels-last memory format (NHWC), which
oneDNN's kernels prefer: on an Intel Xeon with AMX the whole training step ran 1.03-1.12x
faster in fp32 and 1.16-1.22x in bf16 at 64 and 32 px (``benchmarks/step_speed.py``). Outputs keep
that format through the element-wise ops that follow; :class:`Generator` hands its images back
contiguous. Stride is 1 and the padding keeps the size (k // 2).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

UNFOLD_MAX_PIXELS = 4
_plain = False


@contextmanager
def plain_ops() -> Iterator[None]:
    """Within the block every conv is ``F.conv2d`` and every modulated kernel is built and
    differentiated by autograd's own ops: the network as it runs without this module's
    routes (``benchmarks/step_speed.py``'s baseline of the authors' code)."""
    global _plain
    before, _plain = _plain, True
    try:
        yield
    finally:
        _plain = before


def routed() -> bool:
    """False inside :func:`plain_ops`."""
    return not _plain


def same_conv2d(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, padding: int) -> torch.Tensor:
    """``F.conv2d(x, w, b, padding=padding)`` for x [N, Ci, H, W], w [Co, Ci, k, k]."""
    k = w.shape[-1]
    h, wd = x.shape[-2:]
    if _plain or padding != k // 2 or k % 2 == 0:
        return F.conv2d(x, w, b, padding=padding)
    if (h, wd) == (1, 1):
        return F.linear(x.flatten(1), w[:, :, k // 2, k // 2], b)[..., None, None]
    if h * wd <= UNFOLD_MAX_PIXELS and x.device.type == "cpu":
        n, co = x.shape[0], w.shape[0]
        cols = F.unfold(x, k, padding=padding).transpose(1, 2).reshape(n * h * wd, -1)  # [N*H*W, Ci*k*k]
        # one 2-D product, forward and in every backward (R1's included): the kernel is read
        # once, not once per sample as a batched product would
        y = F.linear(cols, w.reshape(co, -1), b)  # [N*H*W, Co]
        return y.view(n, h * wd, co).transpose(1, 2).reshape(n, co, h, wd)
    if x.device.type == "cpu":
        x, w = x.contiguous(memory_format=torch.channels_last), w.contiguous(memory_format=torch.channels_last)
    return F.conv2d(x, w, b, padding=padding)


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters and state-dict names) that convolves with :func:`same_conv2d`."""

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.stride == (1, 1) and self.groups == 1 and self.dilation == (1, 1) \
                and self.padding_mode == "zeros" and isinstance(self.padding, tuple) \
                and self.padding[0] == self.padding[1] and self.kernel_size[0] == self.kernel_size[1]:
            return same_conv2d(x, weight, bias, self.padding[0])
        return super()._conv_forward(x, weight, bias)
