"""Saving image grids and strips as PNG (Pillow; no torchvision)."""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from PIL import Image

from .atomic import atomic_write


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """[-1, 1] float [N, 3, H, W] -> uint8 [N, H, W, 3]; values outside are clamped."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def grid_image(x: torch.Tensor, nrow: int | None = None, pad: int = 2) -> Image.Image:
    imgs = to_uint8(x)
    n, h, w, _ = imgs.shape
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n))))
    ncol_rows = int(math.ceil(n / nrow))
    canvas = np.full((ncol_rows * (h + pad) + pad, nrow * (w + pad) + pad, 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, nrow)
        canvas[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = imgs[i]
    return Image.fromarray(canvas)


def save_grid(x: torch.Tensor, path: str | os.PathLike, nrow: int | None = None, scale: int = 1) -> None:
    """Save a grid of images in [-1, 1] as one PNG, atomically; ``scale`` enlarges small images."""
    img = grid_image(x, nrow)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))
