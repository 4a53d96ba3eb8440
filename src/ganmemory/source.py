"""A source GAN: the frozen generator (EMA weights) and discriminator that every task shares.

Stored as one safetensors file: tensors ``G.*`` and ``D.*``, and a JSON header with the
network config, how it was trained, and a hash of its tensors that banks use to refuse
tasks learned from another source.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from .errors import GanMemoryError
from .nets import Discriminator, Generator, NetConfig
from .store import load_artifact, prefixed, save_artifact, tensors_hash, unprefixed

SOURCE_FORMAT = "ganmemory-source"
SOURCE_VERSION = 1
DEFAULT_SOURCE_NAME = "source32.safetensors"


def default_source_path() -> Path:
    """The source shipped inside the package (32 px, trained on openclipart and desktop icons)."""
    return Path(str(resources.files("ganmemory") / "assets" / DEFAULT_SOURCE_NAME))


@dataclass
class Source:
    cfg: NetConfig
    G: Generator
    D: Discriminator
    info: dict[str, Any] = field(default_factory=dict)
    file_hash: str | None = None  # hash of the tensors as stored; set by load and save

    def tensors(self) -> dict[str, torch.Tensor]:
        return {**prefixed("G", self.G.state_dict()), **prefixed("D", self.D.state_dict())}

    def save(self, path: str | os.PathLike, dtype: torch.dtype = torch.float32) -> str:
        """Write the source; returns its hash (over the tensors as stored)."""
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in self.tensors().items()}
        h = tensors_hash(tensors)
        self.file_hash = h
        save_artifact(path, tensors, {"format": SOURCE_FORMAT, "format_version": SOURCE_VERSION,
                                      "net": self.cfg.to_dict(), "info": self.info, "hash": h,
                                      "dtype": str(dtype).replace("torch.", "")})
        return h

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> "Source":
        """Load a source file (the shipped default when ``path`` is None), in float32."""
        path = Path(path) if path is not None else default_source_path()
        tensors, meta = load_artifact(path, SOURCE_FORMAT)
        if meta.get("format_version") != SOURCE_VERSION:
            raise GanMemoryError(f"source '{path}' has format version {meta.get('format_version')}; "
                                 f"this ganmemory reads version {SOURCE_VERSION}")
        stored_hash = tensors_hash(tensors)
        if meta.get("hash") != stored_hash:
            raise GanMemoryError(f"source '{path}' is corrupted: its tensors do not match its hash")
        if not isinstance(meta.get("net"), dict):
            raise GanMemoryError(f"source '{path}' is corrupted: its header has no network config")
        cfg = NetConfig.from_dict(meta["net"])
        for key, shape in _pinning_shapes(cfg).items():  # before networks of that config are allocated
            if key not in tensors or tuple(tensors[key].shape) != shape:
                raise GanMemoryError(f"source '{path}' does not match its own network config: tensor '{key}' "
                                     f"should have shape {list(shape)}")
        G, D = Generator(cfg), Discriminator(cfg)
        try:
            G.load_state_dict({k: v.float() for k, v in unprefixed("G", tensors).items()})
            D.load_state_dict({k: v.float() for k, v in unprefixed("D", tensors).items()})
        except RuntimeError as exc:
            raise GanMemoryError(f"source '{path}' does not match its own network config: {exc}") from exc
        G.requires_grad_(False).eval()
        D.requires_grad_(False).eval()
        info = meta.get("info", {})
        return cls(cfg, G, D, info if isinstance(info, dict) else {}, stored_hash)

    def sample(self, n: int, seed: int = 0, y: torch.Tensor | None = None) -> torch.Tensor:
        """n images [n, 3, R, R] in [-1, 1] (clamped), reproducible from ``seed``."""
        return generate(self.G, latents(n, self.cfg.z_dim, seed), y)


def _pinning_shapes(cfg: NetConfig) -> dict[str, tuple[int, ...]]:
    """Shapes of four source tensors that together fix every size a config sets (nf, z_dim,
    embed_dim, nlabels, and the first map's side): when a file's tensors have them, networks
    built from its config are as large as the file, not larger."""
    first = cfg.mults[0] * cfg.nf * cfg.s0 * cfg.s0
    return {"G.fc.weight": (first, cfg.z_dim + cfg.embed_dim), "G.embedding.weight": (cfg.nlabels, cfg.embed_dim),
            "G.conv_img.weight": (3, cfg.mults[-1] * cfg.nf, 7, 7), "D.fc.weight": (cfg.nlabels, first)}


def latents(n: int, z_dim: int, seed: int) -> torch.Tensor:
    """The latent draws behind ``sample(n, seed)``: [n, z_dim] standard normal."""
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def generate(G: Generator, z: torch.Tensor, y: torch.Tensor | None = None, batch: int = 256) -> torch.Tensor:
    """G(z, y) in batches, clamped to [-1, 1]."""
    G.eval()
    out = [G(z[i:i + batch], None if y is None else y[i:i + batch]) for i in range(0, len(z), batch)]
    return torch.cat(out).clamp(-1, 1)
