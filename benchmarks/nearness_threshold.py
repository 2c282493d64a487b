"""What nearness predicts a drop: the measurement behind `nearness.warn_above` (issue 32 §3).

The 50-concept runs (`lfsd benchmark scale`, docs/figures/scale/*.json) follow the fidelity of concepts
1, 10 and 25 from the step each was learned. Between two measurements of a tracked concept, the
concepts taught in between are the candidates for what moved it. For each such interval this script
records the drop (fidelity before - after) and the largest **nearness** of a concept taught in the
interval to the tracked one: the cosine of their reference vectors (the evaluator's DINO-analogue
embeddings of the shots, averaged and normalised: what fidelity and confusion are measured against, and
what the onboarding check compares, `components/evaluation/nearness.py`), plus which attributes they
share (class, body colour, pattern with its colour).

The concept folders are drawn again from the runs' (n, seed): the draw depends on nothing else.

    python -m benchmarks.nearness_threshold docs/figures/scale/lfs-seed0.json docs/figures/scale/lfs-seed1.json \
        docs/figures/scale/finetune-seed0.json --json docs/figures/nearness_threshold.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
from pathlib import Path

import torch
import yaml

from components.config import REPO_ROOT
from components.evaluation.embedder import load_evaluator
from components.evaluation.nearness import nearness_matrix
from components.model.references import load_reference_folder
from components.world.concepts import write_concepts

TRACKED = {"fidelity_first": 0, "fidelity_10": 9, "fidelity_25": 24}  # JSON field -> 0-based position
DROP = 0.05  # a drop this large between two measurements counts as "moved" (fidelity noise is ~0.01-0.02)


def _shared(a: str, b: str) -> list[str]:
    """Attributes two world instance keys (`cls-colour-pattern-pattern_colour`) share."""
    ca, cb = a.split("-"), b.split("-")
    out = [name for name, i in (("class", 0), ("colour", 1)) if ca[i] == cb[i]]
    return out + (["pattern"] if ca[2:] == cb[2:] else [])


def _embedded_sequence(n: int, seed: int, shots: int, work: Path):
    folders = write_concepts(work / f"s{seed}", n=n, shots=shots, seed=seed)
    _, dino = load_evaluator(REPO_ROOT / "models" / "evaluator")
    with torch.no_grad():
        emb = [dino.embed_images(load_reference_folder(f, 32, limit=64)) for f in folders]
    keys = [yaml.safe_load((f / "concept.yaml").read_text())["world_instance"] for f in folders]
    return emb, keys


def intervals(run: dict, work: Path) -> list[dict]:
    """One row per interval between two measurements of a tracked concept."""
    emb, keys = _embedded_sequence(run["n"], run["seed"], run["shots"], work)
    near = nearness_matrix(emb)
    (method, result) = next(iter(run["methods"].items()))
    steps = result["steps"]
    rows = []
    for field, j in TRACKED.items():
        measured = [(i, s[field]) for i, s in enumerate(steps) if s.get(field) is not None and i >= j]
        for (ia, fa), (ib, fb) in itertools.pairwise(measured):
            taught = range(ia + 1, ib + 1)
            k = max(taught, key=lambda t: float(near[t, j]))
            rows.append(
                {
                    "method": method,
                    "seed": run["seed"],
                    "tracked": j + 1,
                    "from_step": ia + 1,
                    "to_step": ib + 1,
                    "drop": round(fa - fb, 4),
                    "nearest_taught": k + 1,
                    "nearness": round(float(near[k, j]), 4),
                    "shares": _shared(keys[k], keys[j]),
                }
            )
    return rows


def summarise(rows: list[dict], thresholds: list[float]) -> list[dict]:
    """For each candidate threshold: how many intervals with a drop >= DROP had nearness above it (recall),
    how many intervals above it had such a drop (precision), and their harmonic mean (F1)."""
    moved = [r for r in rows if r["drop"] >= DROP]
    out = []
    for t in thresholds:
        above = [r for r in rows if r["nearness"] >= t]
        hit = [r for r in above if r["drop"] >= DROP]
        recall = len(hit) / len(moved) if moved else 0.0
        precision = len(hit) / len(above) if above else 0.0
        f1 = 2 * precision * recall / (precision + recall) if hit else 0.0
        out.append(
            {
                "threshold": t,
                "intervals": len(rows),
                "intervals_above": len(above),
                "drops_above": len(hit),
                "drops": len(moved),
                "recall": round(recall, 3),
                "precision": round(precision, 3),
                "f1": round(f1, 3),
            }
        )
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args(argv)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in args.runs:
            rows += intervals(json.loads(path.read_text()), Path(tmp) / path.stem)
    grid = [round(-0.3 + 0.05 * i, 3) for i in range(27)]
    methods = sorted({r["method"] for r in rows})
    result = {
        "command": "python -m benchmarks.nearness_threshold " + " ".join(map(str, args.runs)) + f" --json {args.json}",
        "drop": DROP,
        "intervals": rows,
        "thresholds": {m: summarise([r for r in rows if r["method"] == m], grid) for m in methods},
    }
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    for r in sorted(rows, key=lambda r: -r["drop"]):
        if r["drop"] >= DROP:
            print(r)
    for m in methods:
        best = max(result["thresholds"][m], key=lambda t: (t["f1"], t["threshold"]))
        print(f"{m}: best F1 {best}")


if __name__ == "__main__":
    main()
