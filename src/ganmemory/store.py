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

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as safetensors_load
from safetensors.torch import load_file, save_file

from .atomic import atomic_write
from .errors import GanMemoryError

META_KEY = "ganmemory"
MAX_HEADER_BYTES = 16 << 20  # a ganmemory header is a few kB; a larger one is damaged or hostile


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
    if len(header[META_KEY]) > MAX_HEADER_BYTES:
        raise GanMemoryError(f"file '{path}' has a corrupted ganmemory header ({len(header[META_KEY]):,} "
                             f"characters, more than the {MAX_HEADER_BYTES:,} allowed)")
    try:
        meta = json.loads(header[META_KEY])
    except (json.JSONDecodeError, RecursionError) as exc:
        raise GanMemoryError(f"file '{path}' has a corrupted ganmemory header "
                             f"({'nested too deeply' if isinstance(exc, RecursionError) else exc})") from None
    if not isinstance(meta, dict):
        raise GanMemoryError(f"file '{path}' has a corrupted ganmemory header (a {type(meta).__name__}, "
                             "not an object)")
    return meta


def check_complete(path: str | os.PathLike) -> None:
    """Raise if the file is shorter or longer than its safetensors header says (a cut write)."""
    path = Path(path)
    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if n > size - 8:  # read nothing a damaged length asks for
                raise ValueError(f"it claims {n:,} header bytes in a file of {size:,}")
            if n > MAX_HEADER_BYTES:
                raise ValueError(f"{n:,} header bytes, more than the {MAX_HEADER_BYTES:,} allowed")
            header = json.loads(fh.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, OSError, RecursionError) as exc:
        raise GanMemoryError(f"file '{path}' is corrupted: its header cannot be read ({exc})") from None
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
        raise GanMemoryError(f"file '{path}' is corrupted: its tensors cannot be read ({exc})") from None
    return tensors, meta


# safetensors' dtype codes -> torch's, for hashing a file's raw bytes as ``tensors_hash`` does
_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}


def load_checked(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str, str | None]:
    """Read a safetensors file in one pass: (its tensors, their ``tensors_hash``, the name of
    the first tensor holding NaN or inf, or None). The hash and the finiteness are computed on
    the file's bytes as read, without copies: at 32 px the checked read took 9.9 ms against
    7.5 ms for ``load_file`` alone (BENCHMARKS.md, "Verifying task files")."""
    path = Path(path)
    try:
        blob = path.read_bytes()
        tensors = safetensors_load(blob)
    except (SafetensorError, ValueError, RuntimeError, OSError) as exc:
        raise GanMemoryError(f"file '{path}' is corrupted: its tensors cannot be read ({exc})") from None
    n = int.from_bytes(blob[:8], "little")
    index = json.loads(blob[8:8 + n])  # valid: safetensors has just parsed it
    data = memoryview(blob)[8 + n:]
    names = sorted(k for k in index if k != "__metadata__")
    if any(index[k]["dtype"] not in _DTYPES for k in names):  # a dtype we do not map: hash the tensors
        digest = tensors_hash(tensors)
    else:
        h = hashlib.sha256()
        for name in names:
            entry = index[name]
            start, end = entry["data_offsets"]
            h.update(f"{name}|{_DTYPES[entry['dtype']]}|{tuple(entry['shape'])}|".encode())
            h.update(data[start:end])
        digest = h.hexdigest()[:16]
    bad = None
    spans = sorted((tuple(index[k]["data_offsets"]), index[k]["dtype"], k) for k in names)
    if spans and {d for _, d, _ in spans} == {"F32"} and spans[0][0][0] == 0 and \
            all(a[0][1] == b[0][0] for a, b in zip(spans, spans[1:])):  # one float32 run: check it at once
        if not np.isfinite(np.frombuffer(data[:spans[-1][0][1]], np.float32)).all():
            bad = next(k for _, _, k in spans if not bool(torch.isfinite(tensors[k]).all()))
    else:
        bad = next((k for k in names if tensors[k].is_floating_point() and not bool(torch.isfinite(tensors[k]).all())),
                   None)
    return tensors, digest, bad


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
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())  # as ``load_checked`` hashes a file
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())  # the bytes, without a copy
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
