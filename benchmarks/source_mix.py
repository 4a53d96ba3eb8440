"""Build an image folder for source training: openclipart plus Debian icon themes.

    python benchmarks/source_mix.py --out runs/source_mix/data
    ganmemory pretrain --data runs/source_mix/data --dedupe --init SOURCE ...

The folder holds two class folders of 32 px PNGs (the labels do not matter to an
unconditional source):

- ``openclipart/``: the built-in openclipart set, exact duplicates and blank images dropped;
- ``icons/``: the PNG icons of four Debian icon themes at one size each (faenza 64, moka
  64x64, gnome 48x48, tango 32x32), composited onto white, exact duplicates and blank images
  dropped. Icons of faces, emotes, smileys and emoji are left out: emoji is one of the
  benchmark tasks, and a source must not have seen a task's data.

The icon packages are downloaded with ``apt-get download`` (no root needed) into
``--debs`` and unpacked there; none of it is installed. Their licences differ from
openclipart's public domain: tango is public domain, faenza and gnome GPL, moka CC-BY-SA-4.0
or GPL-3+ (each package's copyright file).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ganmemory.atomic import atomic_write
from ganmemory.data import ImageSet, load_data
from ganmemory.data.imageio import SkippedImage, load_image

THEMES = {"faenza-icon-theme": "64", "moka-icon-theme": "64x64", "gnome-icon-theme": "48x48",
          "tango-icon-theme": "32x32"}
TASK_LIKE = re.compile(r"(emote|face-|emoji|smil)", re.IGNORECASE)


def icon_files(debs: Path) -> list[Path]:
    """The chosen size's real (not symlinked) PNG icons of every theme, unpacked under ``debs``."""
    debs.mkdir(parents=True, exist_ok=True)
    files = []
    for package, size in THEMES.items():
        root = debs / package
        if not root.exists():
            subprocess.run(["apt-get", "download", package], cwd=debs, check=True)
            deb = next(debs.glob(f"{package}_*.deb"))
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        files += [p for p in sorted(root.rglob("*.png"))
                  if size in p.parts and not p.is_symlink() and not TASK_LIKE.search(str(p))]
    return files


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
    p.add_argument("--debs", default="runs/source_mix/debs")
    p.add_argument("--resolution", type=int, default=32)
    a = p.parse_args()
    out = Path(a.out)
    clipart = load_data("openclipart", a.resolution).deduplicated()
    write_pngs(clipart.images, out / "openclipart")
    icons = []
    for f in tqdm(icon_files(Path(a.debs)), desc="icons", unit="img"):
        try:
            icons.append(load_image(str(f), a.resolution)[0])
        except SkippedImage as exc:
            tqdm.write(f"skipped {f}: {exc}")
    icons = ImageSet("icons", np.stack(icons), np.zeros(len(icons), np.int64), ("icons",)).deduplicated()
    write_pngs(icons.images, out / "icons")
    print(f"{out}: {len(clipart)} openclipart images ({clipart.note}), {len(icons)} icons ({icons.note})")


if __name__ == "__main__":
    main()
