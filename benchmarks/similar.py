"""The stress sequence run (issue 32 §4): does a method keep concept 1 and keep similar concepts apart?

    python -m benchmarks.similar run --concepts outputs/similar-3200 --method lfs --seed 0 \
        --json docs/figures/similar/3200-lfs-seed0.json [--set runtime.threads=1]
    python -m benchmarks.similar table docs/figures/similar/*.json     (paired by sequence, minus lfs)

`run` teaches one method over one sequence with the pipeline's own `train_task` and scores, at every step
k, concept 1 and the concept just learned (fidelity and confusion against every learned concept's
references), and at the last step every concept and the RCF classes. That is what the issue's targets
read (concept 1's fidelity at the end over its step-1 fidelity; confusion at the end) at a fraction of
the full protocol's cost (2 concepts a step instead of k; the full matrix is `benchmarks/forgetting.py`).
Each (sequence, method, seed) is one process and one JSON, so methods run side by side on a small
machine; `table` prints them paired by sequence and seed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FIELDS = ("fidelity", "confusion", "margin", "nearest")  # per scored concept and step


def _clean(x):
    """JSON has no NaN: null."""
    return None if isinstance(x, float) and math.isnan(x) else x


def run(concepts: Path, method_name: str, seed: int, out_json: Path, work: Path, overrides: list[str]) -> dict:
    import numpy as np
    import torch

    from benchmarks.forgetting import apply_overrides
    from components.config import load_params
    from components.device import placement
    from components.evaluation.embedder import load_evaluator
    from components.evaluation.forgetting import ForgettingEvaluator
    from components.lifelong import LifelongModel
    from components.training.concept import read_concept
    from components.training.loop import train_task
    from components.training.methods import get_method

    params = apply_overrides(load_params(), overrides)
    torch.set_num_threads(params.runtime.threads)
    where = placement(params.runtime)
    clip, dino = load_evaluator(REPO_ROOT / "models" / "evaluator")
    evaluator = ForgettingEvaluator(clip, dino, params.forgetting)
    base_dir = REPO_ROOT / "models" / "base"
    dirs = sorted(p for p in Path(concepts).iterdir() if (p / "concept.yaml").is_file())
    method = get_method(method_name)
    model = LifelongModel.from_base(base_dir, method_name)
    base = LifelongModel.from_base(base_dir, method_name)
    base.bundle.requires_grad_(False).place(where)
    cfg0 = dataclasses.replace(params.training, seed=seed, method=method_name)
    icgen = method.icgen and model.bundle.has_context_path
    steps, start = [], time.time()
    for k, folder in enumerate(dirs, start=1):
        concept = read_concept(folder)
        cfg = dataclasses.replace(cfg0, seed=cfg0.seed * 100 + k)  # run_sequence's per-task seed
        task = train_task(model, concept, method, cfg, Path(work) / f"{k:02d}-{concept.name}", where=where)
        last = k == len(dirs)
        classes = list(dict.fromkeys(e.class_word for e in model.ledger.entries)) if last else []
        evaluator.base_rcf_images(base.bundle, classes)
        t0 = time.time()
        step = evaluator.score_step(model, icgen=icgen, rcf_classes=classes, only=None if last else sorted({0, k - 1}))
        row = {
            "k": k,
            "concept": concept.name,
            "train_s": round(task.seconds, 1),
            "step_s": task.step_seconds,
            "score_s": round(time.time() - t0, 1),
            "scores": {c.name: {f: _clean(getattr(c, f)) for f in FIELDS} for c in step.concepts},
        }
        if last:
            row["rcf_similarity"], row["rcf_class_acc"] = step.rcf_similarity, step.rcf_class_acc
        steps.append(row)
        first = step.concepts[0]
        print(
            f"[{method_name}] {k}/{len(dirs)} {concept.name}: train {task.seconds:.0f} s; concept 1 "
            f"{first.fidelity:.3f} (confusion {first.confusion:.2f}); new {step.concepts[-1].fidelity:.3f}",
            flush=True,
        )
        _write(out_json, concepts, method_name, seed, overrides, dirs, steps, start, params)
    final = steps[-1]["scores"]
    names = [d.name.split("-", 1)[-1] for d in dirs]
    first_name = names[0]
    a11 = steps[0]["scores"][first_name]["fidelity"]
    summary = {
        "concept1_step1": a11,
        "concept1_end": final[first_name]["fidelity"],
        "concept1_kept": final[first_name]["fidelity"] / a11,
        "final_fidelity": float(np.mean([final[n]["fidelity"] for n in names])),
        "confusion": float(np.mean([final[n]["confusion"] for n in names])),
        "margin": float(np.mean([final[n]["margin"] for n in names if final[n]["margin"] is not None])),
        "new_concept_fidelity": float(np.mean([s["scores"][n]["fidelity"] for s, n in zip(steps, names)])),
        "forgetting_at_end": float(
            np.mean([s["scores"][n]["fidelity"] - final[n]["fidelity"] for s, n in zip(steps[:-1], names[:-1])])
        ),
        "rcf_similarity": steps[-1]["rcf_similarity"],
        "train_s_per_task": float(np.mean([s["train_s"] for s in steps])),
    }
    return _write(out_json, concepts, method_name, seed, overrides, dirs, steps, start, params, summary)


def _write(out_json, concepts, method, seed, overrides, dirs, steps, start, params, summary=None) -> dict:
    report = {
        "command": f"python -m benchmarks.similar run --concepts {concepts} --method {method} --seed {seed} "
        f"--json {out_json}" + "".join(f" --set {o}" for o in overrides),
        "machine": f"{platform.machine()}, cpu, torch threads {params.runtime.threads}",
        "concepts": [d.name for d in dirs],
        "method": method,
        "seed": seed,
        "wall_seconds": round(time.time() - start, 1),
        "complete": summary is not None,
        "summary": summary,
        "steps": steps,
    }
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(report, indent=2))
    return report


PAIRED = (
    ("concept1_kept", "concept 1 kept (end / step 1)"),
    ("confusion", "confusion at the end"),
    ("confusion_at_learning", "confusion of each concept at its own step (mean)"),
    ("margin", "margin at the end"),
    ("final_fidelity", "final fidelity"),
    ("forgetting_at_end", "forgetting at the end (fidelity at its step - at the end, mean)"),
    ("new_concept_fidelity", "new-concept fidelity (mean)"),
    ("rcf_similarity", "RCF similarity at the end"),
    ("train_s_per_task", "training s per task (contended)"),
)


def _values(report: dict) -> dict:
    """The summary, plus each concept's confusion on the step that taught it (what learning it cost at once,
    before any later concept could move it)."""
    learn = [s["scores"][s["concept"].split("-", 1)[-1]]["confusion"] for s in report["steps"]]
    return (report["summary"] or {}) | {"confusion_at_learning": sum(learn) / len(learn)}


def table(paths: list[Path], baseline: str = "lfs") -> str:
    """The complete runs paired by sequence: one row per (metric, method), a column per sequence, the mean,
    and each sequence's difference to `baseline` on the same sequence and seed."""
    runs: dict[tuple[str, str], dict] = {}
    for p in sorted(paths):
        r = json.loads(Path(p).read_text())
        if "steps" in r and r["complete"]:  # not a `floor` report, not a run still going
            seq = Path(r["command"].split("--concepts ")[1].split()[0]).name + f" seed {r['seed']}"
            sets = [o for o in r["command"].split(" --set ")[1:] if not o.startswith("runtime.")]  # not threads
            runs[(seq, r["method"] + "".join(f" [{o.split()[0]}]" for o in sets))] = _values(r)
    seqs = sorted({s for s, _ in runs})
    methods = sorted({m for _, m in runs}, key=lambda m: (m != baseline, m))
    lines = [
        f"| metric | method | {' | '.join(seqs)} | mean | minus {baseline}, per sequence |",
        "| --- | --- |" + " --- |" * (len(seqs) + 2),
    ]
    for key, label in PAIRED:
        for m in methods:
            vals = [runs.get((s, m), {}).get(key) for s in seqs]
            base = [runs.get((s, baseline), {}).get(key) for s in seqs]
            have = [v for v in vals if v is not None]
            diff = [f"{v - b:+.3f}" if v is not None and b is not None else "-" for v, b in zip(vals, base)]
            cells = [f"{v:.3f}" if v is not None else "-" for v in vals]
            mean = f"{sum(have) / len(have):.3f}" if have else "-"
            lines.append(
                f"| {label} | {m} | {' | '.join(cells)} | {mean} | {', '.join(diff) if m != baseline else ''} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--concepts", type=Path, required=True)
    r.add_argument("--method", required=True)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--json", type=Path, required=True)
    r.add_argument("--work", type=Path, default=None, help="checkpoints (default: outputs/similar-work/...)")
    r.add_argument("--set", dest="overrides", action="append", default=[], help="KEY=VALUE as benchmark forgetting")
    t = sub.add_parser("table")
    t.add_argument("jsons", nargs="+", type=Path)
    f = sub.add_parser("floor", help="the evaluator's confusion on fresh views of the real objects")
    f.add_argument("--concepts", type=Path, required=True)
    f.add_argument("--json", type=Path)
    c = sub.add_parser("confusion-by-step", help="a finished run's task folders scored in full, step by step")
    c.add_argument("checkpoints", type=Path)
    c.add_argument("--json", type=Path)
    w = sub.add_parser("why", help="per run: is the final confusion learned badly, or forgotten?")
    w.add_argument("jsons", nargs="+", type=Path)
    n = sub.add_parser("nearness", help="per run: did nearness to concept 1 flag the steps that dropped it?")
    n.add_argument("jsons", nargs="+", type=Path)
    n.add_argument("--warn-above", type=float, default=0.4)
    a = ap.parse_args(argv)
    from benchmarks.similar_checks import confusion_by_step, floor, nearness_vs_drops, why

    if a.cmd == "nearness":
        print(nearness_vs_drops(a.jsons, a.warn_above))
        return
    if a.cmd == "why":
        print(why(a.jsons))
        return
    if a.cmd == "confusion-by-step":
        rows = confusion_by_step(a.checkpoints)
        if a.json:
            a.json.parent.mkdir(parents=True, exist_ok=True)
            cmd = f"python -m benchmarks.similar confusion-by-step {a.checkpoints} --json {a.json}"
            a.json.write_text(json.dumps({"command": cmd, "steps": rows}, indent=2))
        return
    if a.cmd == "floor":
        report = floor(a.concepts)
        print(f"{a.concepts}: confusion {report['confusion']:.3f}, margin {report['margin']:.3f}")
        if a.json:
            a.json.parent.mkdir(parents=True, exist_ok=True)
            a.json.write_text(json.dumps(report, indent=2))
        return
    if a.cmd == "table":
        print(table(a.jsons))
        return
    work = a.work or REPO_ROOT / "outputs" / "similar-work" / f"{a.concepts.name}-{a.method}-seed{a.seed}"
    run(a.concepts, a.method, a.seed, a.json, work, a.overrides)


if __name__ == "__main__":
    sys.exit(main())
