"""Reference images for In-Context Generation, read from a concept's folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


def load_reference_folder(folder: Path, size: int, limit: int = 3) -> torch.Tensor:
    """Up to `limit` images of a folder (sorted by name), RGB, resized to size x size -> (R, 3, H, W) in [-1, 1]."""
    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not paths:
        raise FileNotFoundError(f"{folder}: no reference images")
    return reference_tensor([Image.open(p) for p in paths], size)


def reference_tensor(images: list[Image.Image], size: int) -> torch.Tensor:
    """Images (any mode) -> RGB, resized to size x size -> (R, 3, H, W) in [-1, 1]: how every reference is read,
    from a concept's folder or from a serving request."""
    arrays = [np.asarray(im.convert("RGB").resize((size, size), Image.BICUBIC)) for im in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
