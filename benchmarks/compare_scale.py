"""Did a rerun of a 50-concept scale run measure the same chain? Quality fields step by step, old vs new.

    git show 113d9a3:docs/figures/scale/lfs-seed1.json > /tmp/old.json
    python -m benchmarks.compare_scale /tmp/old.json docs/figures/scale/lfs-seed1.json

Both reports must hold the same method and concept sequence. Prints, per quality field, the largest |new - old|
over all steps (and where), and every value whose 3-decimal rounding changed. Seconds, RSS and bytes are
not compared: no rerun gives the same (docs/log/dvc-pipeline-2026-12-07.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

QUALITY = (
    "avg_forgetting",
    "final_fidelity",
    "rcf_preservation",
    "rcf_similarity",
    "fidelity_first",
    "fidelity_10",
    "fidelity_25",
    "est_avg_forgetting",
    "est_final_fidelity",
    "new_concept_fidelity",
)


def compare(old: dict, new: dict) -> tuple[dict[str, tuple[float, int]], list[tuple[int, str, float, float]]]:
    """({field: (largest |difference|, at k)}, [(k, field, old, new) whose 3-decimal rounding changed])."""
    if list(old["methods"]) != list(new["methods"]):
        raise ValueError(f"different methods: {list(old['methods'])} vs {list(new['methods'])}")
    worst: dict[str, tuple[float, int]] = {}
    changed = []
    for method in new["methods"]:
        a_rows, b_rows = old["methods"][method]["steps"], new["methods"][method]["steps"]
        if [r["concept"] for r in a_rows] != [r["concept"] for r in b_rows]:
            raise ValueError(f"{method}: not the same concept sequence")
        for a, b in zip(a_rows, b_rows):
            for field in QUALITY:
                if a.get(field) is None or b.get(field) is None:
                    continue
                d = abs(b[field] - a[field])
                if d > worst.get(field, (0.0, 0))[0]:
                    worst[field] = (d, b["k"])
                if round(a[field], 3) != round(b[field], 3):
                    changed.append((b["k"], field, a[field], b[field]))
    return worst, changed


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    args = ap.parse_args(argv)
    worst, changed = compare(json.loads(args.old.read_text()), json.loads(args.new.read_text()))
    for field, (d, k) in sorted(worst.items(), key=lambda x: -x[1][0]):
        print(f"{field:22s} max |difference| {d:.1e} at k = {k}")
    print(f"{len(changed)} values changed at 3 decimals")
    for k, field, a, b in changed:
        print(f"  k = {k:2d} {field}: {a:.4f} -> {b:.4f}")


if __name__ == "__main__":
    main()
