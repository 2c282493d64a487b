"""`python -m components.validation FOLDER...`: print each folder's report; exit 1 if any is rejected.

`--write-suite` rewrites concept_suite.json from the expectation classes (after changing `rules.py`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from components.validation import rules
from components.validation.suite import SUITE_FILE, write_suite
from components.validation.validate import validate_concept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.validation", description=__doc__)
    parser.add_argument("folders", nargs="*", type=Path, help="concept folders to validate")
    parser.add_argument("--min-shots", type=int, default=rules.DEFAULT_MIN_SHOTS)
    parser.add_argument("--max-shots", type=int, default=rules.DEFAULT_MAX_SHOTS)
    parser.add_argument("--learned", nargs="*", default=[], help="concept names already learned")
    parser.add_argument("--write-suite", action="store_true", help=f"rewrite {SUITE_FILE.name} and exit")
    args = parser.parse_args(argv)
    if args.write_suite:
        write_suite()
        print(f"wrote {SUITE_FILE}")
        return 0
    ok = True
    for folder in args.folders:
        report = validate_concept(
            folder, min_shots=args.min_shots, max_shots=args.max_shots, learned_names=set(args.learned)
        )
        print(report.format())
        ok &= report.ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
