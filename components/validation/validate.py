"""One entry point: validate a concept folder, collecting every problem, without touching it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from components.validation import checks, rules
from components.validation.manifest import build_manifest, empty_manifest, list_folder, listing_manifest
from components.validation.report import Problem, ValidationError, ValidationReport, dedupe
from components.validation.suite import run_suite


def validate_concept(
    folder: Path,
    *,
    min_shots: int = rules.DEFAULT_MIN_SHOTS,
    max_shots: int = rules.DEFAULT_MAX_SHOTS,
    learned_names: Iterable[str] = frozenset(),
) -> ValidationReport:
    """Python checks (files, links, YAML, names, decoding) plus the GX suite over the manifest.

    Read only: files are opened for reading and nothing is written, moved or normalised here. What the
    listing alone refutes (shot count, byte sizes) is reported before any image is hashed or decoded and
    before GX is imported: a refusal of that kind takes well under a second.
    """
    if not 1 <= min_shots <= max_shots:
        raise ValueError(f"need 1 <= min_shots <= max_shots, got {min_shots}, {max_shots}")
    folder = Path(folder)
    blocked = checks.folder_problem(folder)
    if blocked is not None:
        return _report(folder, [blocked], empty_manifest())
    listing = list_folder(folder)
    problems: list[Problem] = checks.listing_problems(folder, listing)
    problems += checks.concept_yaml_problems(listing, learned_names)
    early = checks.count_and_size_problems(folder, listing, min_shots, max_shots)
    if early:
        return _report(folder, problems + early, listing_manifest(folder, listing))
    manifest = build_manifest(folder)
    problems += checks.caption_problems(folder, listing)
    problems += checks.image_problems(folder, manifest)
    problems += run_suite(manifest, min_shots=min_shots, max_shots=max_shots, folder_label=checks.folder_label(folder))
    return _report(folder, problems, manifest)


def require_valid(
    folder: Path,
    *,
    min_shots: int = rules.DEFAULT_MIN_SHOTS,
    max_shots: int = rules.DEFAULT_MAX_SHOTS,
    learned_names: Iterable[str] = frozenset(),
) -> ValidationReport:
    """`validate_concept`, raising ValidationError (with the full report) unless the folder is ok."""
    report = validate_concept(folder, min_shots=min_shots, max_shots=max_shots, learned_names=learned_names)
    if not report.ok:
        raise ValidationError(report)
    return report


def _report(folder: Path, problems: list[Problem], manifest) -> ValidationReport:
    """Group problems by file (folder first, then concept.yaml, then files by name) for reading."""
    label = checks.folder_label(folder)
    rank = {label: (0, ""), rules.CONCEPT_FILE: (1, "")}
    problems = sorted(dedupe(problems), key=lambda p: rank.get(p.file, (2, p.file)))
    return ValidationReport(folder=folder, ok=not problems, problems=problems, manifest=manifest)
