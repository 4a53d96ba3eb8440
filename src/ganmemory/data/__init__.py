"""Data: specs, built-in offline datasets, image folders, and the batch transform.

``load_data(spec, resolution)`` returns an :class:`ImageSet` of uint8 images held in memory;
``preprocess`` turns a uint8 batch into the network's input range with flips and
dequantisation noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import GanMemoryError
from .builtin import BUILTINS, class_names, fetch, locate, not_fetched_error, load_split
from .folder import load_folder
from .spec import BUILTIN_NAMES, DataSpec, parse_spec, parse_union


@dataclass
class ImageSet:
    """Images in memory: uint8 [N, R, R, 3], labels int64 [N] indexing ``classes``."""

    spec: str
    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    skipped: int = 0  # files that could not be decoded
    note: str = ""  # told to the user, e.g. that the images were resized

    def __len__(self) -> int:
        return len(self.images)

    @property
    def resolution(self) -> int:
        return int(self.images.shape[1])

    def deduplicated(self, min_std: float = 2.0) -> "ImageSet":
        """Drop exact duplicates (at this resolution; the first copy stays) and blank images
        (pixel standard deviation below ``min_std``). openclipart at 32 px holds 1,314 exact
        duplicates, one blank image 134 times: a GAN learns such repeats as a stuck motif."""
        seen: set[bytes] = set()
        keep = []
        for i, img in enumerate(self.images):
            key = img.tobytes()
            if key in seen or float(img.std()) < min_std:
                continue
            seen.add(key)
            keep.append(i)
        idx = np.asarray(keep, dtype=np.int64)
        dropped = len(self) - len(idx)
        note = f"dropped {dropped} duplicate or blank images of {len(self)}"
        return ImageSet(self.spec, self.images[idx], self.labels[idx], self.classes, self.skipped,
                        "; ".join(n for n in (self.note, note) if n))


def _resolve_classes(name: str, wanted: tuple[str, ...] | None, spec: str) -> tuple[str, ...]:
    known = class_names(name)
    if wanted is None:
        return known
    out = []
    for c in wanted:
        if c in known:
            out.append(c)
        elif c.isdigit() and int(c) < len(known):
            out.append(known[int(c)])
        else:
            raise GanMemoryError(f"data spec '{spec}': unknown class '{c}' for {name}; "
                                 f"known: {', '.join(known)}")
    if len(set(out)) != len(out):
        raise GanMemoryError(f"data spec '{spec}': a class is listed twice")
    return tuple(out)


def load_data(spec: str | DataSpec, resolution: int) -> ImageSet:
    """Load a data spec or a ``+``-joined union of specs at ``resolution`` (images are resized
    and centre-cropped). A union's classes are named ``PART:CLASS``, in the order of its parts."""
    if isinstance(spec, str):
        parts = parse_union(spec)
        if len(parts) > 1:
            return _union(spec.strip(), [p.name for p in parts], [load_data(p, resolution) for p in parts])
    ds = parse_spec(spec) if isinstance(spec, str) else spec
    text = str(ds)
    if ds.kind == "folder":
        images, labels, classes, skipped, resized = load_folder(ds.name, resolution)
        note = (f"{resized} of {len(images)} images in '{text}' are not {resolution}x{resolution}; "
                "they were resized and centre-cropped") if resized else ""
        return ImageSet(text, images, labels, classes, skipped, note)
    b = BUILTINS[ds.name]
    split = ds.split or b.splits[0]
    if split not in b.splits:
        raise GanMemoryError(f"data spec '{text}': unknown split '{split}' for {ds.name}; "
                             f"known: {', '.join(b.splits)}")
    if locate(ds.name) is None:
        raise not_fetched_error(ds.name)
    classes = _resolve_classes(ds.name, ds.classes, text)
    images, labels, skipped = load_split(ds.name, split, classes, resolution)
    if len(images) == 0:
        raise GanMemoryError(f"data spec '{text}' selects no images")
    note = ""
    if b.native != f"{resolution}x{resolution}":
        note = f"{ds.name} images are {b.native}; they were resized to {resolution}x{resolution}"
    return ImageSet(text, images, labels, classes, skipped, note)


def _union(spec: str, names: list[str], sets: list[ImageSet]) -> ImageSet:
    labels, classes, offset = [], [], 0
    for name, s in zip(names, sets):
        labels.append(s.labels + offset)
        classes += [f"{name}:{c}" for c in s.classes]
        offset += len(s.classes)
    return ImageSet(spec, np.concatenate([s.images for s in sets]), np.concatenate(labels),
                    tuple(classes), sum(s.skipped for s in sets), "; ".join(s.note for s in sets if s.note))


def preprocess(batch: torch.Tensor, generator: torch.Generator | None = None,
               flip: bool = True) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> float [N, 3, H, W] in [-1, 1), with random flips and dequantisation.

    Dequantisation is x = (pixel + u) / 128 - 1 with u ~ U[0, 1): it keeps real data inside the
    generator's range, so even a tanh output can reach pure white (docs/method.md, section 2).
    """
    x = batch.permute(0, 3, 1, 2).float()  # [N, 3, H, W]
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype)
    x = (x + u) / 128.0 - 1.0
    if flip:
        mask = torch.rand(x.shape[0], generator=generator) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x


__all__ = ["BUILTINS", "BUILTIN_NAMES", "DataSpec", "ImageSet", "fetch", "load_data", "locate",
           "parse_spec", "parse_union", "preprocess"]
