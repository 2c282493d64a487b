"""From a validated concept folder to its versioned dataset `data/concepts/<name>/`.

Normalisation (docs/validation.md has the full policy): every accepted image becomes an upright
8-bit RGB PNG at its own resolution (EXIF orientation applied, alpha composited on white, 16-bit
scaled, CMYK/palette/grayscale converted), named `shot-NN.png` in the source's name order. The folder
also holds a clean `concept.yaml` and `source.json` (the sha256 of every source file): that is how a
second onboarding of the same folder is recognised as a no-op.
"""

from __future__ import annotations

import json
import shutil
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


def submission_of(report) -> ConceptSubmission:
    """From a passing ValidationReport (its manifest carries name, class word and hashes)."""
    m = report.manifest
    return ConceptSubmission(
        Path(report.folder),
        str(m["name"].iloc[0]),
        str(m["class_word"].iloc[0]),
        tuple(sorted(str(h) for h in m["sha256"])),
    )


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
    """The dataset folder of an identical, already learned submission of `folder`, else None."""
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
    """Write the normalised copy to `data/concepts/<name>/` (atomically: built beside it, then moved)."""
    from components.validation import normalise_image
    from components.validation.manifest import list_folder

    target = ws.data_dir / sub.name
    ws.data_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{sub.name}-", dir=ws.data_dir))
    try:
        for i, path in enumerate(list_folder(sub.folder).images):
            normalise_image(path).save(tmp / f"shot-{i:02d}.png", format="PNG")
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
