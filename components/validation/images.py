"""Reading concept images: header facts, a full decode check, and the normalisation policy.

Normalisation policy (what the copy step after validation applies via `normalise_image`):

- Every accepted image becomes 8-bit RGB, upright.
- EXIF orientation is applied first (`PIL.ImageOps.exif_transpose`), so phone photos stored
  sideways with an orientation tag are used the way they are shown.
- Grayscale (`1`, `L`) is replicated to three channels.
- Alpha (`RGBA`, `LA`, `PA`, `P` with transparency) is composited on white, not dropped: a
  transparent background must not turn black.
- `CMYK`, `YCbCr`, `RGBX` and palette images are converted by Pillow.
- 16-bit (`I;16`, `I;16L`, `I;16B`, `I;16N`) is scaled to 8 bits (value / 257), not clipped; 32-bit
  integer `I` is read as 16-bit data (clipped to 0..65535, then scaled).
- Any other mode (e.g. float `F`) is rejected by validation.

Nothing here writes: files are opened read-only and every result lives in memory.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from components.checksums import file_digest

_ALPHA_MODES = {"RGBA", "LA", "PA"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
_WHITE = (255, 255, 255, 255)


@dataclass(frozen=True)
class Header:
    """What the file says about itself before any pixel is decoded (None when unreadable)."""

    format: str | None
    mode: str | None
    width: int | None
    height: int | None


@contextmanager
def open_image(path: Path | BinaryIO) -> Iterator[Image.Image]:
    """Open read-only without decompression-bomb warnings (size limits are checked separately)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            yield img


def read_header(path: Path) -> Header:
    """Format, mode and size from the header alone; cheap even for a huge or broken file."""
    try:
        with open_image(path) as img:
            return Header(img.format, img.mode, img.width, img.height)
    except Exception:  # any failure to even identify the file is reported by `decode_problem`
        return Header(None, None, None, None)


def sha256_of(path: Path) -> str:
    """Content hash, streamed so a large file never sits in memory whole."""
    return file_digest(path, "sha256")


def decode_problem(path: Path) -> str | None:
    """Why the image cannot be fully decoded and normalised, or None when it can.

    `verify()` catches broken PNG chunks (CRC) without decoding; the second open decodes every pixel
    (truncated data raises) and runs the normalisation, so an accepted file is known to copy cleanly.
    """
    try:
        with open_image(path) as img:
            img.verify()
        with open_image(path) as img:
            to_rgb(img)
    except UnidentifiedImageError:
        return "not a recognisable image (corrupt bytes or an unsupported format)"
    except Image.DecompressionBombError:
        return "too many pixels to decode safely"
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, zlib errors, ...
        return f"cannot decode image ({type(exc).__name__}: {exc})"
    return None


def normalise_image(path: Path | BinaryIO) -> Image.Image:
    """The image at `path` (or in an open binary file) as upright 8-bit RGB, detached from the file
    (policy: module docstring)."""
    with open_image(path) as img:
        return to_rgb(img)


def to_rgb(img: Image.Image) -> Image.Image:
    """Apply EXIF orientation, then bring any accepted mode to 8-bit RGB."""
    img = ImageOps.exif_transpose(img)  # a new, fully loaded image; rotation first, on the raw mode
    if img.mode in _SIXTEEN_BIT_MODES:
        img = _sixteen_to_eight(img)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in _ALPHA_MODES:
        return _composite_on_white(img)
    if img.mode in {"1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr"}:
        return img.convert("RGB")
    raise ValueError(f"unsupported image mode {img.mode!r}")


def _sixteen_to_eight(img: Image.Image) -> Image.Image:
    """Scale 16-bit samples to 8 bits; Pillow's own convert would clip everything above 255."""
    values = np.clip(np.asarray(img), 0, 65535).astype(np.uint32)
    # (v + 128) // 257 == rint(v / 257) for every integer v (no ties): the float64 formula's bytes in a
    # quarter of its memory (a 4096x4096 16-bit image: 64 MiB, not 256).
    return Image.fromarray(((values + 128) // 257).astype(np.uint8))  # 2-D uint8 -> mode L


def _composite_on_white(img: Image.Image) -> Image.Image:
    """Transparent pixels become white, so cut-out product shots keep a neutral background."""
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, _WHITE)
    return Image.alpha_composite(background, rgba).convert("RGB")
