"""The checks a GX suite over the manifest cannot express: files, links, YAML, names, decoding.

Each function returns problems and never raises for bad input, so one run reports everything.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from components.validation import rules
from components.validation.images import decode_problem
from components.validation.manifest import FolderListing, load_concept_yaml
from components.validation.report import Problem

_ALLOWED_SUFFIXES = ", ".join(sorted(rules.IMAGE_SUFFIXES))
_BAD_NAME = "file name is not UTF-8 or holds a control character (newline, escape, ...); rename the file"


def folder_label(folder: Path) -> str:
    """How the folder itself is named in a report line."""
    return f"{Path(folder).name}/"


def folder_problem(folder: Path) -> Problem | None:
    """The folder must exist and be a directory before anything else can be looked at."""
    folder = Path(folder)
    if not folder.exists():
        return Problem(folder_label(folder), "folder does not exist")
    if not folder.is_dir():
        return Problem(folder_label(folder), "is not a folder")
    try:
        os.listdir(folder)
    except OSError as exc:
        return Problem(folder_label(folder), f"cannot read folder ({exc.strerror})")
    return None


def listing_problems(folder: Path, listing: FolderListing) -> list[Problem]:
    """Empty folder, symlinks, subfolders and any file that is neither image, caption nor concept.yaml."""
    folder = Path(folder)
    problems: list[Problem] = []
    if listing.is_empty():
        problems.append(Problem(folder_label(folder), "folder is empty: expected images and concept.yaml"))
    problems += [Problem(_rel(folder, p), _symlink_reason(folder, p)) for p in listing.symlinks]
    problems += [
        Problem(_rel(folder, p) + "/", "unexpected subfolder: images must sit directly in the concept folder")
        for p in listing.subfolders
    ]
    problems += [Problem(_rel(folder, p), "not a regular file (fifo, socket or device)") for p in listing.special_files]
    problems += [Problem(_rel(folder, p), _BAD_NAME) for p in listing.bad_names]
    not_image = f"not an image file (allowed: {_ALLOWED_SUFFIXES}), a caption or concept.yaml"
    problems += [Problem(_rel(folder, p), not_image) for p in listing.other_files]
    return problems


def _symlink_reason(folder: Path, link: Path) -> str:
    """Symlinks are refused outright; say where it points so the fix (copy the file in) is obvious."""
    target = os.readlink(link)
    try:
        resolved = (link.parent / target).resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return f"symlink (-> {target}) that cannot be resolved; symlinks are not accepted"
    if not resolved.is_relative_to(folder.resolve()):
        return f"symlink pointing outside the folder (-> {target}); symlinks are not accepted, copy the file in"
    return f"symlink (-> {target}); symlinks are not accepted, copy the file in"


def count_and_size_problems(folder: Path, listing: FolderListing, min_shots: int, max_shots: int) -> list[Problem]:
    """What the listing alone refutes, before any file is opened: the shot count and files over the byte
    limit (same words as the GX suite's). A folder of 3,000 files or one huge file is refused at once."""
    problems = []
    n = len(listing.images)
    if not min_shots <= n <= max_shots:
        expected = f"expected between {min_shots} and {max_shots} shots"
        problems.append(Problem(folder_label(folder), f"{n} image(s); {expected}"))
    for path in listing.images:
        size = os.lstat(path).st_size
        if size > rules.MAX_BYTES:  # zero-byte files are named as such by the full checks
            reason = f"file size {size} bytes is outside 1..{rules.MAX_BYTES} bytes"
            problems.append(Problem(_rel(folder, path), reason))
    return problems


def concept_yaml_problems(listing: FolderListing, learned_names: Iterable[str] = ()) -> list[Problem]:
    """concept.yaml must exist, parse to a mapping, and carry a valid, new name and a class word."""
    if listing.concept_yaml is None:
        return [Problem(rules.CONCEPT_FILE, "missing: every concept needs concept.yaml with name and class_word")]
    try:
        meta = load_concept_yaml(listing.concept_yaml)
    except (OSError, ValueError) as exc:
        return [Problem(rules.CONCEPT_FILE, str(exc) if isinstance(exc, ValueError) else f"unreadable ({exc})")]
    if not isinstance(meta, dict):
        return [Problem(rules.CONCEPT_FILE, f"must be a mapping with keys name and class_word, got {_kind(meta)}")]
    reasons = _key_reasons(meta) + _name_reasons(meta.get("name"), set(learned_names))
    reasons += _class_word_reasons(meta.get("class_word"))
    return [Problem(rules.CONCEPT_FILE, reason) for reason in reasons]


def _key_reasons(meta: dict) -> list[str]:
    known = set(rules.CONCEPT_KEYS_REQUIRED) | set(rules.CONCEPT_KEYS_OPTIONAL)
    reasons = [f"missing key '{key}'" for key in rules.CONCEPT_KEYS_REQUIRED if key not in meta]
    unknown = sorted(str(k) for k in meta if k not in known)
    if unknown:
        reasons.append(f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(known))})")
    for key in rules.CONCEPT_KEYS_OPTIONAL:
        if key in meta and not isinstance(meta[key], str):
            reasons.append(f"'{key}' must be a string, got {_kind(meta[key])}")
    return reasons


def name_reasons(name: object) -> list[str]:
    """Why `name` is not a safe concept name: it becomes a folder, a token and a registry key."""
    if not isinstance(name, str):
        return [f"'name' must be a string, got {_kind(name)}"]
    reasons = []
    if not rules.NAME_MIN_LEN <= len(name) <= rules.NAME_MAX_LEN:
        limits = f"{rules.NAME_MIN_LEN}-{rules.NAME_MAX_LEN}"
        reasons.append(f"name {name!r} must be {limits} characters long, is {len(name)}")
    if "/" in name or "\\" in name:
        reasons.append(f"name {name!r} contains a path separator")
    if ".." in name:
        reasons.append(f"name {name!r} contains '..'")
    if not reasons and not re.fullmatch(rules.NAME_REGEX, name):
        reasons.append(
            f"name {name!r} may only use lowercase letters, digits and hyphens, "
            "and must start and end with a letter or digit"
        )
    return reasons


def _name_reasons(name: object, learned_names: set[str]) -> list[str]:
    if name is None:
        return []  # reported as a missing key
    reasons = name_reasons(name)
    if not reasons and name in learned_names:
        reasons.append(f"concept name {name!r} is already learned; choose a new name")
    return reasons


def _class_word_reasons(class_word: object) -> list[str]:
    if class_word is None:
        return []  # reported as a missing key (or an explicit null, which YAML cannot tell apart here)
    if not isinstance(class_word, str):
        return [f"'class_word' must be a string, got {_kind(class_word)}"]
    if not re.fullmatch(rules.CLASS_WORD_REGEX, class_word):
        return [f"class_word {class_word!r} must be 1-32 lowercase letters (spaces and hyphens inside)"]
    return []


def image_problems(folder: Path, manifest: pd.DataFrame) -> list[Problem]:
    """Zero-byte files and files that do not decode; over-size files are left to the suite."""
    problems = []
    for row in manifest.itertuples(index=False):
        reason = _image_reason(Path(folder) / row.path, row)
        if reason:
            problems.append(Problem(row.path, reason))
    return problems


def _image_reason(path: Path, row) -> str | None:
    if row.bytes == 0:
        return "zero-byte file"
    if row.bytes > rules.MAX_BYTES or _over(row.width) or _over(row.height):
        return None  # decoding it would be the costly thing the size limit exists to avoid
    return decode_problem(path)


def _over(side) -> bool:
    return not pd.isna(side) and side > rules.MAX_SIDE


def caption_problems(folder: Path, listing: FolderListing) -> list[Problem]:
    """A sidecar caption must be non-empty UTF-8 text."""
    problems = []
    for path in listing.captions.values():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            problems.append(Problem(_rel(folder, path), "caption is not UTF-8 text"))
            continue
        except OSError as exc:
            problems.append(Problem(_rel(folder, path), f"caption is unreadable ({exc.strerror})"))
            continue
        if not text.strip():
            problems.append(Problem(_rel(folder, path), "caption file is empty"))
    return problems


def _rel(folder: Path, path: Path) -> str:
    return path.relative_to(folder).as_posix()


def _kind(value: object) -> str:
    return "nothing" if value is None else type(value).__name__
