"""Two runs of the forgetting benchmark compared: are they the same numbers?

    python -m benchmarks.compare_forgetting --json OLD.json NEW.json  # every per-seed value, every A[k][j], exact
    python -m benchmarks.compare_forgetting --logs OLD.log NEW.log    # every task's printed scores (3 decimals)
    python -m benchmarks.compare_forgetting --workspaces OLD NEW      # two `make demo` workspaces, exact

`--logs` serves runs that did not reach their JSON: it compares the task evaluations both logs hold.
`--workspaces` compares what the pipeline committed: every checkpoint's `forgetting.json` (each step's
record, the matrix A, the sequence metrics) and the DVC metrics files, with `==`.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

KEYS = (
    "final_fidelity",
    "avg_forgetting",
    "bwt",
    "rcf_preservation",
    "rcf_class_acc",
    "new_concept_fidelity",
    "text_alignment",
    "final_clip_i",
    "confusion",  # absent from tables written before issue 32: compared where both have it
    "margin",
)
LINE = re.compile(r"^\[([\w-]+)\]\s+fidelity (.*) \| rcf sim (\S+) acc (\S+)")


def compare_json(old: dict, new: dict) -> bool:
    same = True
    for method, a in old["methods"].items():
        b = new["methods"][method]
        for k in (k for k in KEYS if k in a or k in b):
            eq = json.dumps(a.get(k, {}).get("per_seed")) == json.dumps(b.get(k, {}).get("per_seed"))  # NaN == NaN
            same &= eq
            print(f"{method:20s} {k:22s} {'identical' if eq else 'DIFFERENT'} {a.get(k, {}).get('per_seed')}")
        eq = json.dumps(a["matrices"]) == json.dumps(b["matrices"])  # NaN above the diagonal: compare the text
        same &= eq
        print(f"{method:20s} A[k][j] of every seed  {'identical' if eq else 'DIFFERENT'}")
    return same


def _rows(path: str) -> list[tuple]:
    return [
        (m.group(1), m.group(2).split(), m.group(3), m.group(4))
        for m in (LINE.match(line) for line in open(path, errors="replace"))
        if m
    ]


def compare_logs(old: str, new: str) -> bool:
    a, b = _rows(old), _rows(new)
    n = min(len(a), len(b))
    for i in range(n):
        print(
            f"#{i + 1:2d} {a[i][0]:18s} {'same' if a[i] == b[i] else 'DIFF'}  A[k][:] {' '.join(a[i][1])} | "
            f"rcf sim {a[i][2]} acc {a[i][3]}"
        )
    same = sum(a[i] == b[i] for i in range(n))
    print(f"{same}/{n} task evaluations identical to 3 decimals (old: {len(a)} logged, new: {len(b)} logged)")
    return same == n


def compare_workspaces(old: Path, new: Path) -> bool:
    same = True
    for ckpt in sorted(p for p in (old / "checkpoints").glob("*-*") if p.is_dir()):
        a, b = (json.loads((root / "checkpoints" / ckpt.name / "forgetting.json").read_text()) for root in (old, new))
        eq = json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
        same &= eq
        print(f"{ckpt.name}: forgetting.json {'identical' if eq else 'DIFFERENT'}")
    for rel in ("metrics/forgetting.json", "metrics/history.json"):
        eq = (old / rel).read_bytes() == (new / rel).read_bytes()
        same &= eq
        print(f"{rel}: {'identical bytes' if eq else 'DIFFERENT'}")
    return same


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", nargs=2, metavar=("OLD", "NEW"))
    ap.add_argument("--logs", nargs=2, metavar=("OLD", "NEW"))
    ap.add_argument("--workspaces", nargs=2, metavar=("OLD", "NEW"), type=Path)
    args = ap.parse_args()
    if args.json:
        ok = compare_json(*(json.loads(Path(p).read_text()) for p in args.json))
    elif args.workspaces:
        ok = compare_workspaces(*args.workspaces)
    else:
        ok = compare_logs(*args.logs)
    print("ALL IDENTICAL" if ok else "DIFFERENCES FOUND")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
