"""Importing a GAN_stability (GP-GAN) ``resnet4`` checkpoint as a ganmemory source.

Such a checkpoint is a torch file holding state dicts under 'generator', 'discriminator' and
'generator_test' (the EMA generator), possibly with DataParallel's 'module.' prefix. It is read
with ``torch.load(weights_only=True)``, which refuses arbitrary pickled objects.
"""

from __future__ import annotations

import math
import os
import pickle
from pathlib import Path

import torch

from .errors import GanMemoryError
from .nets import Discriminator, Generator, NetConfig
from .source import Source


def _strip(sd: dict) -> dict[str, torch.Tensor]:
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}


def infer_config(g_sd: dict[str, torch.Tensor]) -> NetConfig:
    """Read resolution, nf, z size, embedding size and labels off a generator state dict."""
    try:
        nlabels, embed_dim = g_sd["embedding.weight"].shape
        fc_out, fc_in = g_sd["fc.weight"].shape
        nf = g_sd["conv_img.weight"].shape[1]
        first = g_sd["resnet_0_0.conv_0.weight"].shape[1]
    except KeyError as exc:
        raise GanMemoryError(f"the generator state dict lacks {exc}: not a GP-GAN resnet4 generator") from exc
    n_blocks = len({k.split(".")[0] for k in g_sd if k.startswith("resnet_")})
    s0 = int(round(math.sqrt(fc_out / first)))
    resolution = s0 * 2 ** (n_blocks - 1)
    return NetConfig(resolution=resolution, nf=nf, z_dim=fc_in - embed_dim, embed_dim=embed_dim,
                     nlabels=nlabels, output="tanh")


def import_gan_stability(ckpt: str | os.PathLike, out: str | os.PathLike, prefer_ema: bool = True,
                         dtype: torch.dtype = torch.float32) -> Source:
    """Convert a GP-GAN checkpoint into a source file; returns the loaded source."""
    path = Path(ckpt)
    if not path.exists():
        raise GanMemoryError(f"checkpoint '{path}' does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise GanMemoryError(f"checkpoint '{path}' cannot be read as a weights-only torch file ({exc})") from exc
    if not isinstance(data, dict) or "discriminator" not in data or not (
            "generator" in data or "generator_test" in data):
        keys = ", ".join(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise GanMemoryError(f"checkpoint '{path}' holds {keys}; expected 'generator' (or 'generator_test') "
                             "and 'discriminator' state dicts")
    g_key = "generator_test" if prefer_ema and "generator_test" in data else "generator"
    g_sd, d_sd = _strip(data[g_key]), _strip(data["discriminator"])
    cfg = infer_config(g_sd)
    G, D = Generator(cfg), Discriminator(cfg)
    try:
        G.load_state_dict(g_sd)
        D.load_state_dict(d_sd)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0:2]
        raise GanMemoryError(f"checkpoint '{path}' does not match the resnet4 layout inferred "
                             f"({cfg.resolution} px, nf {cfg.nf}): {' '.join(first)}") from exc
    src = Source(cfg, G.requires_grad_(False).eval(), D.requires_grad_(False).eval(),
                 {"imported_from": path.name, "generator": g_key})
    src.save(out, dtype=dtype)
    return Source.load(out)
