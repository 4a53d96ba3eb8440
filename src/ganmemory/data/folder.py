"""Image folders: flat (one class) or one sub-folder per class, like ``data/102flowers/``."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import GanMemoryError
from .builtin import _decode_files
from .imageio import IMAGE_SUFFIXES


def _images_in(folder: Path, recursive: bool) -> list[Path]:
    pattern = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in pattern if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not p.name.startswith("."))


def load_folder(path: str, resolution: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], int, int]:
    """Decode every image under ``path``; sub-folders holding images become classes.

    Returns images, labels, class names, the number skipped and the number resized."""
    root = Path(path).expanduser()
    if not root.exists():
        raise GanMemoryError(f"data folder '{path}' does not exist")
    if not root.is_dir():
        raise GanMemoryError(f"data spec '{path}' is a file, not a folder of images")
    subdirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    by_class = [(d.name, _images_in(d, recursive=True)) for d in subdirs]
    empty = [name for name, files in by_class if not files]
    by_class = [(name, files) for name, files in by_class if files]
    flat = _images_in(root, recursive=False)
    if empty and (by_class or flat):  # a class folder with nothing in it would vanish unseen
        raise GanMemoryError(f"data folder '{path}': class folder '{empty[0]}' holds no images "
                             f"({', '.join(IMAGE_SUFFIXES)}); add images to it or move it out")
    if flat or not by_class:
        by_class = [(root.name or "images", flat)] + by_class
    by_class = [(name, files) for name, files in by_class if files]
    if not by_class:
        raise GanMemoryError(f"data folder '{path}' holds no images ({', '.join(IMAGE_SUFFIXES)})")
    images, labels, skipped_all, sizes = [], [], [], []
    for i, (_, files) in enumerate(by_class):
        arr, skipped = _decode_files(files, resolution, f"decoding {path}", sizes)
        images.append(arr)
        labels.append(np.full(len(arr), i, np.int64))
        skipped_all += skipped
    for msg in skipped_all:
        warnings.warn(f"skipped {msg}", stacklevel=2)
    out = np.concatenate(images)
    if len(out) == 0:
        raise GanMemoryError(f"data folder '{path}': none of its {len(skipped_all)} images could be decoded")
    resized = sum(1 for wh in sizes if wh != (resolution, resolution))
    return out, np.concatenate(labels), tuple(name for name, _ in by_class), len(skipped_all), resized
