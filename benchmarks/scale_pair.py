"""Two methods' 50-concept scale runs on one sequence, paired at their full rows (issue 32 §4's tables).

    python -m benchmarks.scale_pair docs/figures/scale/lfs-seed0.json docs/figures/similar/scale-lfs-cross-kd-seed0.json

Each report holds one method (`lfsd benchmark scale --methods M --reference-every 10`); both must teach the same
concept sequence. Prints, at k = 1 and every full row, concept 1's fidelity, average forgetting, RCF
preservation and confusion of each, and concept 1 kept at the last step (end / step 1).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

FIELDS = ("fidelity_first", "avg_forgetting", "rcf_preservation", "confusion")


def rows(report: dict) -> tuple[str, dict[int, dict]]:
    (method,) = report["methods"]
    return method, {r["k"]: r for r in report["methods"][method]["steps"]}


def paired(a: dict, b: dict) -> dict:
    """{"methods": (A, B), "rows": {k: {field: (a, b)}}, "kept": (a, b)} over the rows both score in full."""
    (ma, ra), (mb, rb) = rows(a), rows(b)
    if [ra[k]["concept"] for k in sorted(ra)] != [rb[k]["concept"] for k in sorted(rb)]:
        raise ValueError("not the same concept sequence")
    full = [k for k in sorted(ra) if k == 1 or (ra[k].get("avg_forgetting") is not None and k in rb)]
    out = {k: {f: (ra[k].get(f), rb[k].get(f)) for f in FIELDS} for k in full}
    last = max(ra)
    kept = tuple(r[last]["fidelity_first"] / r[1]["fidelity_first"] for r in (ra, rb))
    return {"methods": (ma, mb), "rows": out, "kept": kept, "last": last}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    args = ap.parse_args(argv)
    p = paired(json.loads(args.a.read_text()), json.loads(args.b.read_text()))
    ma, mb = p["methods"]
    print(f"k | {' | '.join(FIELDS)}   ({ma} / {mb})")
    for k, vals in p["rows"].items():
        cells = [" / ".join("-" if v is None else f"{v:.3f}" for v in vals[f]) for f in FIELDS]
        print(f"{k} | " + " | ".join(cells))
    print(f"concept 1 kept at k = {p['last']}: {ma} {p['kept'][0]:.1%}, {mb} {p['kept'][1]:.1%}")


if __name__ == "__main__":
    main()
