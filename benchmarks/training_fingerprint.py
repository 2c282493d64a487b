"""A fingerprint of what training produces, to show that a refactor changed no number: a few short
tasks per method/adapter on the example concepts, and for each the per-step losses, the relevant
prompts and a sha256 of every saved tensor. Runs on trees from before the architecture step too (old
module names), so two clones can be compared:

    PYTHONPATH=OLD_CLONE .venv/bin/python -m benchmarks.training_fingerprint --out /tmp/old.json   (cwd OLD_CLONE)
    PYTHONPATH=NEW_CLONE .venv/bin/python -m benchmarks.training_fingerprint --out /tmp/new.json   (cwd NEW_CLONE)
    .venv/bin/python -m benchmarks.training_fingerprint --compare /tmp/old.json /tmp/new.json
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import tempfile
from pathlib import Path

CASES = [("lfs", "lora"), ("prior-preservation", "lora"), ("c-lora", "lora"), ("lfs", "full-kv")]


def fingerprint(steps: int = 12, n_concepts: int = 2) -> dict:
    import torch
    from safetensors.torch import load_file

    from components.config import load_params
    from components.training.concept import read_concept
    from components.training.methods import get_method

    try:
        from components.lifelong import LifelongModel
        from components.training.loop import train_task
    except ImportError:  # a tree from before the architecture step
        from components.training.lifelong import LifelongModel
        from components.training.trainer import train_task

    p = load_params()
    torch.set_num_threads(2)
    concepts = sorted(d for d in Path("examples/concepts").iterdir() if (d / "concept.yaml").is_file())[:n_concepts]
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method, adapter in CASES:
            cfg = dataclasses.replace(
                p.training, steps=steps, kd_refresh_every=5, prior_images=4, adapter=adapter, method=method
            )
            model, rows, tensors = LifelongModel.from_base(Path("models/base"), method), [], {}
            for k, c in enumerate(concepts, 1):
                ckpt = Path(tmp) / f"{method}-{adapter}" / f"{k:02d}"
                r = train_task(model, read_concept(c), get_method(method), dataclasses.replace(cfg, seed=300 + k), ckpt)
                rows.append({"losses": r.losses, "relevant_prompts": r.relevant_prompts})
                for f in sorted(ckpt.rglob("*.safetensors")):
                    for name, t in load_file(f).items():
                        tensors[f"{k:02d}/{f.name}/{name}"] = hashlib.sha256(t.numpy().tobytes()).hexdigest()
            out[f"{method}/{adapter}"] = {"tasks": rows, "tensors": tensors}
    return out


def compare(a: dict, b: dict) -> bool:
    same = True
    for case in a:
        rows = a[case]["tasks"] == b.get(case, {}).get("tasks")
        tensors = a[case]["tensors"] == b.get(case, {}).get("tensors")
        n = sum(len(t["losses"]) for t in a[case]["tasks"])
        print(
            f"{case}: {n} steps' losses and prompts identical: {rows}; "
            f"{len(a[case]['tensors'])} tensors bitwise equal: {tensors}"
        )
        same &= rows and tensors
    return same


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--compare", nargs=2, type=Path)
    args = ap.parse_args()
    if args.compare:
        raise SystemExit(0 if compare(*(json.loads(p.read_text()) for p in args.compare)) else 1)
    args.out.write_text(json.dumps(fingerprint(), indent=1))


if __name__ == "__main__":
    main()
