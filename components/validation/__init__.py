"""Validation of a concept folder before it is onboarded (no orchestration imports here).

    report = validate_concept(Path("examples/concepts/00-byruri"), learned_names={"xubyzo"})
    print(report.format())

Python checks cover files, symlinks, concept.yaml, names and decoding; a Great Expectations 1.x
suite (`concept_suite.json`) covers the manifest (shot count, duplicates, sizes, formats, modes).
Modules: `validate` (the one entry point), `checks` (files, links, YAML, names, decoding), `images`
(header facts, decode check, normalisation), `manifest` (the folder as a DataFrame), `suite` (the GX
suite), `rules` (the limits, in one place), `report` (problems + manifest).
Validation is read only. Accepted images are brought to upright 8-bit RGB by `normalise_image`
in the later copy step; the policy is in `components/validation/images.py` and docs/validation.md.
"""

from components.validation import rules
from components.validation.images import normalise_image
from components.validation.manifest import MANIFEST_COLUMNS, build_manifest, empty_manifest
from components.validation.report import Problem, ValidationError, ValidationReport
from components.validation.validate import require_valid, validate_concept

__all__ = [
    "MANIFEST_COLUMNS",
    "Problem",
    "ValidationError",
    "ValidationReport",
    "build_manifest",
    "empty_manifest",
    "normalise_image",
    "require_valid",
    "rules",
    "validate_concept",
]
