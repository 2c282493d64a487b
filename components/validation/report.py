"""What validation found: a list of problems (file + reason) and the manifest it judged."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class Problem:
    """One reason a concept folder cannot be onboarded, tied to the file to fix."""

    file: str  # relative path of the offending file, "concept.yaml", or the folder itself
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.reason}"


@dataclass
class ValidationReport:
    """Every problem found in one folder; `ok` only when there are none."""

    folder: Path
    ok: bool
    problems: list[Problem]
    manifest: pd.DataFrame = field(repr=False)

    def format(self) -> str:
        """One human-readable report: a verdict line, then one line per problem."""
        n = len(self.manifest)
        if self.ok:
            return f"concept folder {self.folder}: OK ({n} image(s))"
        lines = [f"concept folder {self.folder}: REJECTED, {len(self.problems)} problem(s), {n} image(s)"]
        lines += [f"  - {p.file}: {p.reason}" for p in self.problems]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


class ValidationError(Exception):
    """Raised by `require_valid`; carries the full report so callers can show every problem."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(report.format())
        self.report = report


def dedupe(problems: list[Problem]) -> list[Problem]:
    """Drop repeats (e.g. one bad name seen on every manifest row), keeping first-seen order."""
    return list(dict.fromkeys(problems))
