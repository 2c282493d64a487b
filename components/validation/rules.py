"""The limits a concept folder must meet, in one place.

The GX suite (`suite.py`, `concept_suite.json`) and the Python checks (`checks.py`) both read these,
so a limit can never mean one thing to one layer and another thing to the other.
"""

from __future__ import annotations

DEFAULT_MIN_SHOTS = 3
DEFAULT_MAX_SHOTS = 10

MIN_SIDE = 16  # px; smaller images carry no usable detail of the instance
MAX_SIDE = 4096  # px; larger ones cost memory for nothing once resized to the model's size
MAX_BYTES = 20 * 1024 * 1024  # 20 MiB per file
MAX_YAML_BYTES = 64 * 1024  # concept.yaml is three short keys; anything bigger is not one

CONCEPT_FILE = "concept.yaml"
CAPTION_SUFFIX = ".txt"  # optional sidecar caption: `01.txt` next to `01.png`

# Suffix -> what the file may be called; format -> what Pillow must find inside.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})
ALLOWED_FORMATS = ("BMP", "JPEG", "MPO", "PNG", "WEBP")  # MPO: phone JPEGs with a depth picture

# Every mode `images.normalise_image` turns into 8-bit RGB (see the policy in `images.py`).
ALLOWED_MODES = (
    "1",
    "L",
    "LA",
    "P",
    "PA",
    "RGB",
    "RGBA",
    "RGBX",
    "CMYK",
    "YCbCr",
    "I;16",
    "I;16L",
    "I;16B",
    "I;16N",
    "I",
)

# Concept names become folder names, token names and registry keys: keep them boring.
NAME_MIN_LEN = 2
NAME_MAX_LEN = 32
NAME_REGEX = r"^[a-z0-9][a-z0-9-]{0,30}[a-z0-9]$"
CLASS_WORD_REGEX = r"^[a-z](?:[a-z -]{0,30}[a-z])?$"

CONCEPT_KEYS_REQUIRED = ("name", "class_word")
CONCEPT_KEYS_OPTIONAL = ("world_instance",)
