"""Decoding image files into fixed-size RGB arrays (Pillow + numpy; no torchvision)."""

from __future__ import annotations

import warnings

import numpy as np
from PIL import Image, ImageOps

# Images above this many pixels are skipped without being decoded: openclipart holds a few
# files of over 100 M pixels that take seconds and gigabytes each to decode.
MAX_PIXELS = 40_000_000

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")


class SkippedImage(Exception):
    """An image that could not be used; the message says why."""


def to_rgb(img: Image.Image) -> Image.Image:
    """RGB with any transparency composited onto white; grey copied to three channels."""
    if img.mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "RGBa"):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    if img.mode != "RGB":
        return img.convert("RGB")
    return img


def resize_center_crop(img: Image.Image, resolution: int) -> Image.Image:
    """Resize the shorter side to ``resolution`` and crop the centre square."""
    return ImageOps.fit(img, (resolution, resolution), method=Image.Resampling.BICUBIC,
                        centering=(0.5, 0.5))


def load_image(path: str, resolution: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode one file into uint8 [resolution, resolution, 3] and its original (w, h);
    raise SkippedImage if unusable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if w * h > MAX_PIXELS:
                    raise SkippedImage(f"{w}x{h} pixels is over the {MAX_PIXELS:,} bound")
                img.load()
                rgb = to_rgb(img)
    except SkippedImage:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise SkippedImage(f"cannot be decoded ({exc.__class__.__name__}: {exc})") from exc
    return np.asarray(resize_center_crop(rgb, resolution), dtype=np.uint8), (w, h)


def resize_array(images: np.ndarray, resolution: int) -> np.ndarray:
    """Resize uint8 [N, h, w, C] (C = 1 or 3) to [N, resolution, resolution, 3]."""
    n, h, w = images.shape[:3]
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    if h == resolution and w == resolution:
        return np.ascontiguousarray(images)
    out = np.empty((n, resolution, resolution, 3), dtype=np.uint8)
    for i in range(n):
        out[i] = np.asarray(resize_center_crop(Image.fromarray(images[i]), resolution))
    return out
