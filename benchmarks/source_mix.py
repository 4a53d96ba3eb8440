"""Build an image folder for source training: openclipart plus Debian icon themes.

    python benchmarks/source_mix.py --out runs/source_mix/data
    ganmemory pretrain --data runs/source_mix/data --dedupe --init SOURCE ...

This is the folder the shipped source's last 11,000 iterations were trained on. It holds the
same images as the built-in union ``openclipart+icons`` after ``--dedupe`` (the library's
route; see docs/data.md), written as two class folders of 32 px PNGs:

- ``openclipart/``: the built-in openclipart set, exact duplicates and blank images dropped;
- ``icons/``: the built-in ``icons`` set (four Debian icon themes, one size each, faces,
  emotes and smileys left out), exact duplicates and blank images dropped.

The labels do not matter to an unconditional source. The icons' licences differ from
openclipart's public domain: tango is public domain, faenza GPL-3+, gnome GPL-2+, moka
CC-BY-SA-4.0 or GPL-3+ (each package's copyright file).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from ganmemory.atomic import atomic_write
from ganmemory.data import fetch, load_data


def write_pngs(images: np.ndarray, folder: Path) -> None:
    """One PNG per image, each written atomically; a folder left by an earlier run is replaced."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for i, img in enumerate(images):
        pil = Image.fromarray(img)
        atomic_write(folder / f"{i:05d}.png", lambda tmp, pil=pil: pil.save(tmp, format="PNG"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/source_mix/data")
    p.add_argument("--resolution", type=int, default=32)
    a = p.parse_args()
    out = Path(a.out)
    for name in ("openclipart", "icons"):
        fetch(name)
        s = load_data(name, a.resolution).deduplicated()
        write_pngs(s.images, out / name)
        print(f"{out / name}: {len(s)} images ({s.note})")


if __name__ == "__main__":
    main()
