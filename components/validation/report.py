"""What validation found: a list of problems (file + reason) and the manifest it judged."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class Problem:
    """One reason a concept folder cannot be onboarded, tied to the file to fix."""

    file: str  # relative path of the offending file, "concept.yaml", or the folder itself
    reason: str

    def __str__(self) -> str:
        return f"{shown(self.file)}: {shown(self.reason)}"


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
            return f"concept folder {shown(str(self.folder))}: OK ({n} image(s))"
        folder = shown(str(self.folder))
        lines = [f"concept folder {folder}: REJECTED, {len(self.problems)} problem(s), {n} image(s)"]
        lines += [f"  - {p}" for p in self.problems]
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


def shown(text: str) -> str:
    """`text` safe to print or write into a report: control characters and line separators escaped
    (`\\n`, `\\x1b`), bytes that were not UTF-8 shown as `\\xff`. A file name can then neither forge a
    report line nor send escape sequences to a terminal."""
    out = []
    for c in text:
        if 0xDC80 <= ord(c) <= 0xDCFF:  # a byte Python's file-system decoding could not read as UTF-8
            out.append(f"\\x{ord(c) - 0xDC00:02x}")
        elif unicodedata.category(c) in ("Cc", "Cs") or c in "\u2028\u2029":
            out.append(c.encode("unicode_escape").decode("ascii"))
        else:
            out.append(c)
    return "".join(out)
