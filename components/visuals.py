"""Image grids for people: sample sheets, reference strips."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image


def grid(images: np.ndarray, cols: int | None = None, pad: int = 2, upscale: int = 2) -> np.ndarray:
    """(N, H, W, 3) uint8 -> one (rows*H', cols*W', 3) uint8 sheet, white padding, nearest upscale."""
    n, h, w, _ = images.shape
    cols = cols or min(n, 8)
    rows = math.ceil(n / cols)
    h2, w2 = h * upscale, w * upscale
    sheet = np.full((rows * (h2 + pad) + pad, cols * (w2 + pad) + pad, 3), 255, dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        big = img.repeat(upscale, 0).repeat(upscale, 1)
        sheet[pad + r * (h2 + pad) : pad + r * (h2 + pad) + h2, pad + c * (w2 + pad) : pad + c * (w2 + pad) + w2] = big
    return sheet


def save_grid(images: np.ndarray, out: Path, cols: int | None = None) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid(images, cols)).save(out)
    return out
