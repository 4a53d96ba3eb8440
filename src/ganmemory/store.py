"""Artefacts on disk: safetensors files whose header carries a JSON description.

One file per artefact keeps writes atomic (one rename) and self-describing: the header's
``ganmemory`` entry holds the format name and version, the constructor arguments and anything
else needed to rebuild and check the object. Nothing is ever pickled.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from safetensors import safe_open

from .atomic import atomic_write
from .errors import GanMemoryError

META_KEY = "ganmemory"


def save_artifact(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write tensors and a JSON-able ``meta`` dict to ``path`` atomically."""
    flat = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    header = {META_KEY: json.dumps(meta, sort_keys=True)}
    atomic_write(path, lambda tmp: save_file(flat, tmp, metadata=header))


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """Only the JSON header (cheap: no tensor is read)."""
    path = Path(path)
    if not path.exists():
        raise GanMemoryError(f"file '{path}' does not exist")
    try:
        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise GanMemoryError(f"file '{path}' is not a readable safetensors file ({exc})") from exc
    if META_KEY not in header:
        raise GanMemoryError(f"file '{path}' is a safetensors file but not a ganmemory artefact")
    try:
        return json.loads(header[META_KEY])
    except json.JSONDecodeError as exc:
        raise GanMemoryError(f"file '{path}' has a corrupted ganmemory header ({exc})") from exc


def check_complete(path: str | os.PathLike) -> None:
    """Raise if the file is shorter or longer than its safetensors header says (a cut write)."""
    path = Path(path)
    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise GanMemoryError(f"file '{path}' is corrupted: its header cannot be read ({exc})") from exc
    if size != 8 + n + end:
        raise GanMemoryError(f"file '{path}' is corrupted: {size:,} bytes where its header "
                             f"describes {8 + n + end:,}")


def load_artifact(path: str | os.PathLike, expect_format: str | None = None
                  ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    meta = read_meta(path)
    if expect_format and meta.get("format") != expect_format:
        raise GanMemoryError(f"file '{path}' holds a '{meta.get('format')}', not a '{expect_format}'")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise GanMemoryError(f"file '{path}' is corrupted: its tensors cannot be read ({exc})") from exc
    return tensors, meta


def prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in tensors.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    p = prefix + "."
    return {k[len(p):]: v for k, v in tensors.items() if k.startswith(p)}


def tensors_hash(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes, in sorted name order (first 16 hex digits)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def optimizer_to_tensors(opt: torch.optim.Optimizer, prefix: str
                         ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer's state into tensors (per parameter index) and JSON (hyperparameters)."""
    sd = opt.state_dict()
    tensors = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            t = val if torch.is_tensor(val) else torch.tensor(val)
            tensors[f"{prefix}.{idx}.{key}"] = t
    groups = [{k: v for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups}


def optimizer_from_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                           meta: dict[str, Any], prefix: str) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, t in unprefixed(prefix, tensors).items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = t
    groups = meta["param_groups"]
    for g in groups:
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
    opt.load_state_dict({"state": state, "param_groups": groups})
