"""From a validated concept folder to its versioned dataset `data/concepts/<name>/`.

Normalisation (docs/validation.md has the full policy): every accepted image becomes an upright
8-bit RGB PNG at its own resolution (EXIF orientation applied, alpha composited on white, 16-bit
scaled, CMYK/palette/grayscale converted), named `shot-NN.png` in the source's name order. The folder
also holds a clean `concept.yaml` and `source.json` (the sha256 of every source file): that is how a
second onboarding of the same folder is recognised as a no-op.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from components.workspace.layout import Workspace

SOURCE_FILE = "source.json"


@dataclass(frozen=True)
class ConceptSubmission:
    """What a validated folder says about itself."""

    folder: Path
    name: str
    class_word: str
    source_sha256: tuple[str, ...]  # sorted hashes of the source images
    files: tuple[tuple[str, str], ...] = ()  # (path in the folder, sha256) of each validated image, in order


def submission_of(report) -> ConceptSubmission:
    """From a passing ValidationReport (its manifest carries name, class word and hashes)."""
    m = report.manifest
    return ConceptSubmission(
        Path(report.folder),
        str(m["name"].iloc[0]),
        str(m["class_word"].iloc[0]),
        tuple(sorted(str(h) for h in m["sha256"])),
        tuple((str(p), str(h)) for p, h in zip(m["path"], m["sha256"], strict=True)),
    )


def check_folders(ws: Workspace, folders: list[Path]) -> None:
    """Validate every folder that is not already onboarded, raising ValidationError on the first refused
    one: what a command runs before it starts Prefect, Ray or waits for the lock, so bad input is refused
    in seconds. The chain validates again when it gets there (the folder may change in between)."""
    from components.validation import require_valid

    p = ws.params.pipeline
    for folder in folders:
        if already_onboarded(ws, Path(folder)) is None:
            require_valid(Path(folder), min_shots=p.min_shots, max_shots=p.max_shots, learned_names=ws.learned_names())


def fingerprint(folder: Path) -> tuple[str, str, tuple[str, ...]] | None:
    """(name, class word, source hashes) of a folder if it reads as a concept, without validating it:
    used only to recognise a re-submission of something already learned."""
    from components.validation.manifest import build_manifest

    try:
        m = build_manifest(Path(folder))
    except Exception:
        return None
    if m.empty or m["name"].isna().all():
        return None
    return str(m["name"].iloc[0]), str(m["class_word"].iloc[0]), tuple(sorted(str(h) for h in m["sha256"] if h))


def already_onboarded(ws: Workspace, folder: Path) -> str | None:
    """The dataset folder of an identical, already learned submission of `folder`, else None. Nothing is
    hashed unless concept.yaml names a learned concept."""
    from components.validation.manifest import concept_fields, list_folder

    try:
        name, _ = concept_fields(list_folder(Path(folder)))
    except OSError:
        return None
    if name not in ws.learned_names():
        return None
    fp = fingerprint(folder)
    if fp is None or fp[0] not in ws.learned_names():
        return None
    stored = ws.data_dir / fp[0] / SOURCE_FILE
    if not stored.is_file():
        return None
    record = json.loads(stored.read_text())
    if record.get("class_word") == fp[1] and tuple(record.get("sha256", ())) == fp[2]:
        return ws.rel(stored.parent)
    return None


def stage_dataset(ws: Workspace, sub: ConceptSubmission) -> Path:
    """Write the normalised copy of exactly the validated files to `data/concepts/<name>/` (atomically:
    built beside it, then moved). A file added to the folder since validation is not taken; one changed
    or swapped is refused (ValidationError naming it)."""
    from components.validation import normalise_image

    target = ws.data_dir / sub.name
    ws.data_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{sub.name}-", dir=ws.data_dir))
    try:
        for i, (name, sha256) in enumerate(sub.files):
            normalise_image(io.BytesIO(validated_bytes(sub.folder, name, sha256))).save(
                tmp / f"shot-{i:02d}.png", format="PNG"
            )
        (tmp / "concept.yaml").write_text(
            yaml.safe_dump({"name": sub.name, "class_word": sub.class_word}, sort_keys=False)
        )
        (tmp / SOURCE_FILE).write_text(
            json.dumps(
                {
                    "name": sub.name,
                    "class_word": sub.class_word,
                    "source": str(sub.folder),
                    "sha256": list(sub.source_sha256),
                },
                indent=2,
            )
        )
        if target.exists():  # a half-finished earlier attempt of the same concept (never a learned one)
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def validated_bytes(folder: Path, name: str, sha256: str) -> bytes:
    """The bytes of `folder/name`, read without following a symlink, if they still hash to what
    validation saw; else ValidationError (changed, swapped, replaced by a link or grown past the limit)."""
    from components.validation import Problem, ValidationError, ValidationReport, empty_manifest, rules

    def refused(reason: str) -> ValidationError:
        problem = Problem(name, f"{reason} since it was validated; nothing was onboarded, submit the folder again")
        return ValidationError(ValidationReport(Path(folder), False, [problem], empty_manifest()))

    try:
        fd = os.open(Path(folder) / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # a fifo cannot hang us
    except OSError as e:
        raise refused(f"cannot be opened ({e.strerror})") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise refused("is no longer a regular file")
        data = fh.read(rules.MAX_BYTES + 1)
    found = hashlib.sha256(data).hexdigest()
    if found != sha256:
        raise refused(f"changed (sha256 {sha256[:12]} validated, {found[:12]} now)")
    return data
