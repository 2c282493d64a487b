"""Removing a concept by dropping it, or by relearning the concepts after it: which is gone, and what is
kept? Scored over several draws (issue 14, docs/log/results-2026-12-01-to-12-04.md "Two ways to remove a concept").

    python -m benchmarks.forget_retrain --concepts examples/concepts --forget 3 --seeds 0,1,2 \
        --draw-offsets 0,7,13 --json docs/figures/forget_retrain.json
    python -m benchmarks.forget_retrain --pooled RUN.json ... --json docs/figures/forget_retrain_pooled.json

Per seed, on the forget benchmark's chains (same sequence, per-task seeds seed * 100 + position; reused
from `--work` or trained there):
- **full**: the whole sequence (method lfs);
- **dropped**: the full chain without concept `--forget` (`Ledger.without`: what `lfsd forget` does by default);
- **retrained**: the chain before the erased concept, then every later concept relearned on it from its
  own dataset with its own seed and task number (`Ledger.before`: `lfsd forget --retrain-later`);
- **base**: theta_0.
At each sample-seed offset (0 = the protocol's draw; o shifts concept j's seeds to those of j + 100 o, as
benchmarks/eval_noise.py), the erased concept is drawn with its old token and no ICGen context by full,
dropped, retrained and the base, and every kept concept with ICGen (the protocol's) by full, dropped and
retrained. For seed 0 the retrained chain's LoRA is compared with the forget benchmark's never-learned
chain (`lfs-without-NN`, the sequence without the concept trained from the base) where it exists.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np


def retrained_chain(params, base: Path, dirs: list[Path], seed: int, full, erased, work: Path, log):
    """The chain without `erased` with every later concept relearned (checkpoints under `work`, reused)."""
    from components.lifelong import LifelongModel, read_ledger
    from components.training.concept import read_concept
    from components.training.loop import train_task
    from components.training.methods import get_method

    cfg = dataclasses.replace(params.training, method="lfs")
    without = read_ledger(Path(full.ledger.entries[-1].checkpoint)).without(erased.name)
    later = [e for e in without.entries if e.task > erased.task]
    out = Path(work) / f"seed{seed}" / f"lfs-retrained-{erased.task:02d}"
    chain = without.before(later[0].task)
    for entry in later:
        ckpt = out / f"{entry.task:02d}-{entry.name}"
        if not (ckpt / "ledger.json").is_file():
            model = LifelongModel.from_ledger(chain.before(entry.task), base)
            folder = dirs[entry.task - 1]
            train_task(
                model,
                read_concept(folder),
                get_method("lfs"),
                dataclasses.replace(cfg, seed=seed * 100 + entry.task),
                ckpt,
            )
            log(f"  relearned {ckpt}")
        chain = read_ledger(ckpt)
        assert chain.entries[-1].task == entry.task and chain.entries[-1].name == entry.name
    return LifelongModel.from_ledger(chain, base).eval(), out


def _lora_gap(a: Path, b: Path) -> float | None:
    """Max |difference| over the LoRA tensors of two task checkpoints (None if `b` is missing)."""
    from safetensors.torch import load_file

    from components.lifelong.checkpoint import LORA_DIR, LORA_WEIGHTS

    if not (b / LORA_DIR / LORA_WEIGHTS).is_file():
        return None
    x, y = load_file(a / LORA_DIR / LORA_WEIGHTS), load_file(b / LORA_DIR / LORA_WEIGHTS)
    assert sorted(x) == sorted(y)
    return max(float((x[k] - y[k]).abs().max()) for k in x)


def run(
    concepts: Path,
    forget: int,
    seeds: list[int],
    offsets: list[int],
    base: Path,
    evaluator_dir: Path,
    work: Path,
    log=print,
) -> dict:
    import components.evaluation.forgetting as protocol
    from benchmarks.forget_concept import full_and_removed, setup
    from components.evaluation.forgetting import ForgettingEvaluator
    from components.lifelong import LifelongModel

    params, clip, dino, dirs = setup(concepts, evaluator_dir)
    start, rows, original = time.time(), [], protocol._seeds
    try:
        for seed in seeds:
            full, erased, without = full_and_removed(params, base, dirs, seed, forget, work, log)
            dropped = LifelongModel.from_ledger(without, base).eval()
            retrained, _folder = retrained_chain(params, base, dirs, seed, full, erased, work, log)
            never = Path(work) / f"seed{seed}" / f"lfs-without-{forget:02d}"
            gaps = {
                e.name: _lora_gap(Path(e.checkpoint), next(iter(never.glob(f"*-{e.name}")), never / "none"))
                for e in retrained.ledger.entries
                if e.task > erased.task
            }
            bare = LifelongModel.from_base(base, "lfs").eval()
            classes = list(dict.fromkeys(e.class_word for e in full.ledger.entries))
            models = {"full": full, "dropped": dropped, "retrained": retrained}
            for offset in offsets:
                protocol._seeds = lambda tag, n, o=offset: original(tag + 100 * o, n)
                evaluator = ForgettingEvaluator(clip, dino, params.forgetting)
                evaluator.base_rcf_images(bare.bundle, classes)
                erased_score = {
                    label: evaluator.score_concept(m, erased, icgen=False)[0].fidelity
                    for label, m in {**models, "base": bare}.items()
                }
                kept = {
                    label: {
                        c.name: c.fidelity
                        for c in evaluator.score_step(m, icgen=True, rcf_classes=classes).concepts
                        if c.name != erased.name
                    }
                    for label, m in models.items()
                }
                rows.append(
                    {
                        "seed": seed,
                        "offset": offset,
                        "erased": erased.name,
                        "erased_fidelity": erased_score,
                        "kept_fidelity": kept,
                        "retrained_vs_never_lora_max_abs": gaps,
                    }
                )
                log(
                    f"seed {seed} offset {offset}: erased "
                    + ", ".join(f"{k} {v:.3f}" for k, v in erased_score.items())
                    + "; kept change dropped "
                    + ", ".join(f"{n} {kept['dropped'][n] - kept['full'][n]:+.3f}" for n in kept["full"])
                    + "; retrained "
                    + ", ".join(f"{n} {kept['retrained'][n] - kept['full'][n]:+.3f}" for n in kept["full"])
                )
    finally:
        protocol._seeds = original
    return {
        "command": f"python -m benchmarks.forget_retrain --concepts {concepts} --forget {forget} "
        f"--seeds {','.join(map(str, seeds))} --draw-offsets {','.join(map(str, offsets))}",
        "rows": rows,
        "summary": summarise(rows),
        "wall_seconds": round(time.time() - start, 1),
    }


def summarise(rows: list[dict]) -> dict:
    """Per seed, means over the draws: the erased concept's fidelity per chain, and each kept concept's
    change from full (dropped, retrained) with the largest |mean change|."""
    out = {}
    for seed in sorted({r["seed"] for r in rows}):
        mine = [r for r in rows if r["seed"] == seed]
        erased = {k: float(np.mean([r["erased_fidelity"][k] for r in mine])) for k in mine[0]["erased_fidelity"]}
        names = list(mine[0]["kept_fidelity"]["full"])
        change = {
            label: {
                n: float(np.mean([r["kept_fidelity"][label][n] - r["kept_fidelity"]["full"][n] for r in mine]))
                for n in names
            }
            for label in ("dropped", "retrained")
        }
        out[str(seed)] = {
            "draws": len(mine),
            "erased_fidelity_mean": erased,
            "kept_change_mean": change,
            "max_abs_kept_change_mean": {k: max(abs(v) for v in c.values()) for k, c in change.items()},
        }
    return out


def pooled(rows: list[dict], bound: float = 0.02) -> dict:
    """The readings fixed before seeds 6-9 ran (docs/log/results-2026-12-01-to-12-04.md, "Ten seeds"), over every
    seed in `rows`, each seed the mean over its draws (`summarise`). Kept: per kept concept, the mean over
    seeds of (chain - full), its standard error and the seeds below zero; a mode meets the bound when every
    |mean| <= `bound`. Erased: dropped - relearned (= never-learned) per seed, with a two-sided sign test."""
    from benchmarks.report import sign_test_p

    per = summarise(rows)
    seeds = [int(s) for s in per]
    se = lambda x: float(x.std(ddof=1) / np.sqrt(len(x)))
    out: dict = {"seeds": seeds, "kept": {}}
    for label in ("dropped", "retrained"):
        concepts = {}
        for n in rows[0]["kept_fidelity"]["full"]:
            x = np.array([v["kept_change_mean"][label][n] for v in per.values()])
            concepts[n] = {
                "mean": float(x.mean()),
                "se": se(x),
                "below_zero": int((x < 0).sum()),
                "per_seed": [round(float(v), 4) for v in x],
            }
        worst = [v["max_abs_kept_change_mean"][label] for v in per.values()]
        out["kept"][label] = {
            "concepts": concepts,
            "meets_bound": all(abs(c["mean"]) <= bound for c in concepts.values()),
            "per_seed_max_abs": [round(w, 4) for w in worst],
            "seeds_within_bound": sum(w <= bound for w in worst),
        }
    erased = [v["erased_fidelity_mean"] for v in per.values()]
    d = np.array([e["dropped"] - e["retrained"] for e in erased])
    gap = np.array([e["full"] - e["retrained"] for e in erased])
    k, n = int((d > 0).sum()), len(d)
    out["erased_dropped_minus_never"] = {
        "per_seed": [round(float(v), 4) for v in d],
        "mean": float(d.mean()),
        "se": se(d),
        "positive": k,
        "sign_test_p_two_sided": min(1.0, 2 * min(sign_test_p(k, n), sign_test_p(n - k, n))),
        "share_of_learned_gap": float(d.mean() / gap.mean()),
    }
    return out


def main() -> None:
    from components.config import REPO_ROOT

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--concepts", type=Path, default=REPO_ROOT / "examples" / "concepts")
    ap.add_argument("--forget", type=int, default=3, help="1-based position of the concept to remove")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--draw-offsets", default="0,7,13", help="sample-seed offsets, 0 = the protocol's draw")
    ap.add_argument("--json", type=Path, default=REPO_ROOT / "docs" / "figures" / "forget_retrain.json")
    ap.add_argument("--base", type=Path, default=REPO_ROOT / "models" / "base")
    ap.add_argument("--evaluator", type=Path, default=REPO_ROOT / "models" / "evaluator")
    ap.add_argument("--work", type=Path, default=REPO_ROOT / "outputs" / "benchmark")
    ap.add_argument("--pooled", type=Path, nargs="+", help="only pool these reports' rows (`pooled`) into --json")
    a = ap.parse_args()
    if a.pooled:
        report = pooled([r for f in a.pooled for r in json.loads(f.read_text())["rows"]])
        report["command"] = "python -m benchmarks.forget_retrain --pooled " + " ".join(map(str, a.pooled))
    else:
        report = run(
            a.concepts,
            a.forget,
            [int(s) for s in a.seeds.split(",")],
            [int(o) for o in a.draw_offsets.split(",")],
            a.base,
            a.evaluator,
            a.work,
        )
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {a.json}" + (f" in {report['wall_seconds']:.0f} s" if "wall_seconds" in report else ""))


if __name__ == "__main__":
    main()
