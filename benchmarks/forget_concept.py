"""Removing a concept: is it gone, and is everything else still there? (issue 14, docs/results.md)

    python -m benchmarks.forget_concept --concepts examples/concepts --forget 3 --seeds 0,1,2 \
        --json docs/figures/forget_concept.json

Per seed, on the same sequence and the same per-task training seeds as `lfsd benchmark forgetting`
(seed * 100 + the concept's position in the full sequence):
- **full**: the whole sequence learned (method lfs);
- **removed**: that chain with concept `--forget` taken out (`Ledger.without`, what `lfsd forget` does);
- **never**: the sequence without that concept, trained from the base (each concept keeps its seed).
The erased concept is drawn with its old token and no ICGen context (the photos must not be handed back)
by full, removed, never and the bare base; every kept concept is scored (with ICGen, as the protocol
does) by full, removed and never. Checkpoints already in `--work` are reused (same paths as the
forgetting benchmark's), so this runs on top of its sequences.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np


def _chain(base: Path, dirs: list[Path], seeds: list[int], cfg, out: Path, log):
    """Teach `dirs` in order with per-task `seeds`; a checkpoint already in `out` is loaded instead."""
    from components.lifelong import LifelongModel
    from components.training.concept import read_concept
    from components.training.loop import train_task
    from components.training.methods import get_method

    model = LifelongModel.from_base(base, cfg.method)
    for k, (folder, seed) in enumerate(zip(dirs, seeds), start=1):
        ckpt = out / f"{k:02d}-{read_concept(folder).name}"
        if (ckpt / "ledger.json").is_file():
            model = LifelongModel.from_checkpoint(ckpt, base)
            log(f"  reuse {ckpt}")
            continue
        train_task(model, read_concept(folder), get_method(cfg.method), dataclasses.replace(cfg, seed=seed), ckpt)
        model = LifelongModel.from_checkpoint(ckpt, base)
        log(f"  trained {ckpt}")
    return model


def setup(concepts: Path, evaluator_dir: Path):
    """params.yaml (torch threads set from it), the evaluator's embedders and the concept folders in order."""
    import torch

    from components.config import load_params
    from components.evaluation.embedder import load_evaluator

    params = load_params()
    torch.set_num_threads(params.runtime.threads)
    clip, dino = load_evaluator(evaluator_dir)
    return params, clip, dino, sorted(p for p in Path(concepts).iterdir() if (p / "concept.yaml").is_file())


def full_and_removed(params, base: Path, dirs: list[Path], seed: int, forget: int, work: Path, log):
    """The full lfs chain of `seed` (trained into, or reused from, `work`), the erased entry, and the
    chain's ledger without it (what `lfsd forget` serves)."""
    from components.lifelong import read_ledger

    cfg = dataclasses.replace(params.training, method="lfs")
    full = _chain(
        base, dirs, [seed * 100 + k for k in range(1, len(dirs) + 1)], cfg, Path(work) / f"seed{seed}" / "lfs", log
    )
    erased = full.ledger.entries[forget - 1]
    return full.eval(), erased, read_ledger(Path(full.ledger.entries[-1].checkpoint)).without(erased.name)


def run(concepts: Path, forget: int, seeds: list[int], base: Path, evaluator_dir: Path, work: Path, log=print) -> dict:
    from components.evaluation.forgetting import ForgettingEvaluator
    from components.lifelong import LifelongModel

    params, clip, dino, dirs = setup(concepts, evaluator_dir)
    start, rows = time.time(), []
    for seed in seeds:
        cfg = dataclasses.replace(params.training, method="lfs")
        task_seeds = [seed * 100 + k for k in range(1, len(dirs) + 1)]
        full, erased, without = full_and_removed(params, base, dirs, seed, forget, work, log)
        removed = LifelongModel.from_ledger(without, base)
        keep = [i for i in range(len(dirs)) if i != forget - 1]
        never = _chain(
            base,
            [dirs[i] for i in keep],
            [task_seeds[i] for i in keep],
            cfg,
            Path(work) / f"seed{seed}" / f"lfs-without-{forget:02d}",
            log,
        )
        evaluator = ForgettingEvaluator(clip, dino, params.forgetting)
        bare = LifelongModel.from_base(base, "lfs").eval()
        erased_score = {
            label: evaluator.score_concept(m, erased, icgen=False)[0].fidelity
            for label, m in (("full", full), ("removed", removed), ("never", never), ("base", bare))
        }
        classes = list(dict.fromkeys(e.class_word for e in full.ledger.entries))
        evaluator.base_rcf_images(bare.bundle, classes)
        kept = {}
        for label, m in (("full", full), ("removed", removed), ("never", never)):
            step = evaluator.score_step(m, icgen=True, rcf_classes=classes)
            kept[label] = {c.name: c.fidelity for c in step.concepts if c.name != erased.name}
            kept[label + "_rcf_similarity"] = step.rcf_similarity
        change = {n: kept["removed"][n] - kept["full"][n] for n in kept["removed"]}
        row = {
            "seed": seed,
            "erased": erased.name,
            "erased_fidelity": erased_score,
            "kept_fidelity": kept,
            "kept_change": change,
            "max_abs_kept_change": max(abs(v) for v in change.values()),
        }
        rows.append(row)
        log(
            f"seed {seed}: erased {erased.name} fidelity "
            + ", ".join(f"{k} {v:.3f}" for k, v in erased_score.items())
            + f"; kept change max |{row['max_abs_kept_change']:.3f}|"
        )
    return {
        "command": f"python -m benchmarks.forget_concept --concepts {concepts} --forget {forget} "
        f"--seeds {','.join(map(str, seeds))}",
        "method": "lfs",
        "rows": rows,
        "wall_seconds": round(time.time() - start, 1),
        "summary": {
            "removed_minus_never": [r["erased_fidelity"]["removed"] - r["erased_fidelity"]["never"] for r in rows],
            "full_minus_removed": [r["erased_fidelity"]["full"] - r["erased_fidelity"]["removed"] for r in rows],
            "max_abs_kept_change": [r["max_abs_kept_change"] for r in rows],
            "mean_max_abs_kept_change": float(np.mean([r["max_abs_kept_change"] for r in rows])),
        },
    }


def main() -> None:
    from components.config import REPO_ROOT

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--concepts", type=Path, default=REPO_ROOT / "examples" / "concepts")
    ap.add_argument("--forget", type=int, default=3, help="1-based position of the concept to remove")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--json", type=Path, default=REPO_ROOT / "docs" / "figures" / "forget_concept.json")
    ap.add_argument("--base", type=Path, default=REPO_ROOT / "models" / "base")
    ap.add_argument("--evaluator", type=Path, default=REPO_ROOT / "models" / "evaluator")
    ap.add_argument("--work", type=Path, default=REPO_ROOT / "outputs" / "benchmark")
    a = ap.parse_args()
    report = run(a.concepts, a.forget, [int(s) for s in a.seeds.split(",")], a.base, a.evaluator, a.work)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {a.json} in {report['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
