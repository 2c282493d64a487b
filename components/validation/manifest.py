"""Listing a concept folder and describing its images as a manifest DataFrame (read only).

The manifest is the table the GX suite judges, and later the record of what was onboarded:
one row per image file with its hash, header facts, size, caption and the concept it belongs to.
"""

from __future__ import annotations

import os
import stat
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from components.validation import rules
from components.validation.images import read_header, sha256_of

MANIFEST_COLUMNS = ("path", "sha256", "format", "mode", "width", "height", "bytes", "caption", "name", "class_word")
_DTYPES = {"width": "Int64", "height": "Int64", "bytes": "Int64"}


@dataclass
class FolderListing:
    """The folder's entries sorted into what validation treats differently. Nothing is followed."""

    images: list[Path] = field(default_factory=list)  # regular files with an image suffix
    captions: dict[str, Path] = field(default_factory=dict)  # image stem -> `<stem>.txt`
    concept_yaml: Path | None = None  # a regular concept.yaml, never a symlink
    symlinks: list[Path] = field(default_factory=list)
    subfolders: list[Path] = field(default_factory=list)
    other_files: list[Path] = field(default_factory=list)  # regular files that are none of the above
    special_files: list[Path] = field(default_factory=list)  # fifos, sockets, devices: never opened
    bad_names: list[Path] = field(default_factory=list)  # not UTF-8, or control characters: never opened

    def is_empty(self) -> bool:
        return self.concept_yaml is None and not any(
            (
                self.images,
                self.captions,
                self.symlinks,
                self.subfolders,
                self.other_files,
                self.special_files,
                self.bad_names,
            )
        )


def list_folder(folder: Path) -> FolderListing:
    """Classify entries by `lstat`, so a symlink or a fifo is never opened or followed. A name that is not
    UTF-8 or holds a control character (a newline forges report lines, an escape sequence drives the
    terminal) is set aside unopened: it could not be stored, tabulated or printed faithfully."""
    listing = FolderListing()
    entries = sorted(Path(folder).iterdir(), key=lambda p: p.name)
    for path in entries:
        if not printable_name(path.name):
            listing.bad_names.append(path)
            continue
        _classify(path, os.lstat(path).st_mode, listing)
    stems = {p.stem for p in listing.images}
    for path in [p for p in listing.other_files if p.suffix.lower() == rules.CAPTION_SUFFIX and p.stem in stems]:
        listing.other_files.remove(path)
        listing.captions[path.stem] = path
    return listing


def printable_name(name: str) -> bool:
    """A file name that is valid UTF-8 (no surrogate escapes) and has no control character."""
    return not any(unicodedata.category(c) in ("Cc", "Cs") or c in "\u2028\u2029" for c in name)


def _classify(path: Path, mode: int, listing: FolderListing) -> None:
    if stat.S_ISLNK(mode):
        listing.symlinks.append(path)
    elif stat.S_ISDIR(mode):
        listing.subfolders.append(path)
    elif not stat.S_ISREG(mode):
        listing.special_files.append(path)
    elif path.name == rules.CONCEPT_FILE:
        listing.concept_yaml = path
    elif path.suffix.lower() in rules.IMAGE_SUFFIXES:
        listing.images.append(path)
    else:
        listing.other_files.append(path)


def load_concept_yaml(path: Path) -> Any:
    """Parsed concept.yaml; raises ValueError with a readable reason when it cannot be parsed."""
    if path.stat().st_size > rules.MAX_YAML_BYTES:
        raise ValueError(f"is larger than {rules.MAX_YAML_BYTES} bytes; not a concept description")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"is not UTF-8 text ({exc.reason})") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"is not valid YAML ({' '.join(str(exc).split())})") from exc


def concept_fields(listing: FolderListing) -> tuple[str | None, str | None]:
    """(name, class_word) when concept.yaml holds them as strings, else None: the manifest's view."""
    if listing.concept_yaml is None:
        return None, None
    try:
        meta = load_concept_yaml(listing.concept_yaml)
    except (OSError, ValueError):
        return None, None
    if not isinstance(meta, dict):
        return None, None
    return _str_or_none(meta.get("name")), _str_or_none(meta.get("class_word"))


def build_manifest(folder: Path) -> pd.DataFrame:
    """One row per image file of `folder` (symlinks excluded), columns `MANIFEST_COLUMNS`.

    Unreadable images still get a row (format, mode, width, height are null) so they count as shots
    and show up in the report instead of silently vanishing.
    """
    folder = Path(folder)
    listing = list_folder(folder)
    name, class_word = concept_fields(listing)
    rows = [_row(folder, path, listing.captions.get(path.stem), name, class_word) for path in listing.images]
    frame = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    return frame.astype(_DTYPES)


def listing_manifest(folder: Path, listing: FolderListing) -> pd.DataFrame:
    """The manifest of a folder refused from its listing alone: paths and byte sizes, nothing opened."""
    rows = [{"path": p.relative_to(folder).as_posix(), "bytes": os.lstat(p).st_size} for p in listing.images]
    return pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS)).astype(_DTYPES)


def empty_manifest() -> pd.DataFrame:
    """The manifest of a folder that could not be listed at all."""
    return pd.DataFrame(columns=list(MANIFEST_COLUMNS)).astype(_DTYPES)


def _row(folder: Path, path: Path, caption_file: Path | None, name: str | None, class_word: str | None) -> dict:
    header = read_header(path)
    return {
        "path": path.relative_to(folder).as_posix(),
        "sha256": _sha256_or_none(path),
        "format": header.format,
        "mode": header.mode,
        "width": header.width,
        "height": header.height,
        "bytes": path.stat().st_size,
        "caption": _caption(caption_file, name, class_word),
        "name": name,
        "class_word": class_word,
    }


def _caption(caption_file: Path | None, name: str | None, class_word: str | None) -> str | None:
    """The sidecar caption when there is a readable one, else the default `a <name> <class_word>`."""
    if caption_file is not None:
        try:
            text = " ".join(caption_file.read_text(encoding="utf-8").split())
        except (OSError, UnicodeDecodeError):
            text = ""
        if text:
            return text
    if name and class_word:
        return f"a {name} {class_word}"
    return None


def _sha256_or_none(path: Path) -> str | None:
    """None for an unreadable file; the decode check then reports why."""
    try:
        return sha256_of(path)
    except OSError:
        return None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
