"""The forgetting benchmark: every method over one concept sequence, several seeds, one table.

    lfsd benchmark forgetting --concepts examples/concepts --methods lfs,finetune,prior-preservation \
        --seeds 0,1,2 --json docs/figures/forgetting.json

Each row: a method's sequence metrics as mean and std over seeds, its training seconds per task and
`step_time_ratio_vs_finetune` (median optimisation-step time relative to `finetune`, measured in the
same run). Heatmaps of A[k][j] and last-step sample grids are written next to the JSON. Every method x
seed is also an MLflow run of experiment `benchmark-forgetting` (`benchmarks/mlflow_runs.py`).
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from pathlib import Path

import numpy as np

METRIC_KEYS = (
    "final_fidelity",
    "avg_forgetting",
    "bwt",
    "rcf_preservation",
    "rcf_class_acc",
    "new_concept_fidelity",
    "text_alignment",
    "final_clip_i",
    "confusion",  # issue 32: the last row's share of samples nearer another learned concept (evaluation/confusion.py)
    "margin",
)


def run(
    concepts: Path,
    methods: list[str],
    seeds: list[int],
    out_json: Path,
    base: Path,
    evaluator_dir: Path,
    work: Path,
    log=print,
    adapter: str | None = None,
    overrides: list[str] = (),
    to_mlflow: bool = True,
) -> dict:
    import torch

    from components.config import load_params
    from components.device import placement
    from components.evaluation.embedder import load_evaluator
    from components.evaluation.forgetting import ForgettingEvaluator
    from components.progress import progress
    from components.training.in_process_sequence import run_sequence

    params = load_params()
    if adapter:  # every method with the same K/V update kind: LoRA (params.yaml default) or full K/V
        params = dataclasses.replace(params, training=dataclasses.replace(params.training, adapter=adapter))
    params = apply_overrides(params, overrides)
    torch.set_num_threads(params.runtime.threads)
    where = placement(params.runtime)
    clip, dino = load_evaluator(evaluator_dir)
    dirs = sorted(p for p in Path(concepts).iterdir() if (p / "concept.yaml").is_file())
    start = time.time()
    runs: dict[str, list] = {m: [] for m in methods}
    with progress("forgetting benchmark (tasks)", len(seeds) * len(methods) * len(dirs)) as advance:
        for seed in seeds:
            evaluator = ForgettingEvaluator(clip, dino, params.forgetting)  # theta_0 images shared across methods
            for method in methods:
                cfg = dataclasses.replace(params.training, seed=seed, method=method)
                result = run_sequence(
                    base,
                    dirs,
                    method,
                    cfg,
                    evaluator,
                    Path(work) / f"seed{seed}" / method,
                    log=log,
                    on_task=advance,
                    where=where,
                )
                runs[method].append(result)
                _save_visuals(result, Path(out_json).parent / Path(out_json).stem / f"{method}-seed{seed}")
    timing = step_time_probe(base, dirs[0], methods, params.training, work=Path(work) / "timing", log=log)
    rows = {}
    for method, results in runs.items():
        row = {}
        for key in METRIC_KEYS:
            vals = [r.metrics[key] for r in results]
            row[key] = {"mean": float(np.mean(vals)), "std": float(np.std(vals)), "per_seed": vals}
        row["train_s_per_task"] = float(np.mean([t.seconds for r in results for t in r.tasks]))
        row["step_s"] = float(np.median([t.step_seconds for r in results for t in r.tasks]))
        row |= timing.get(method, {})
        row["matrix_seed0"] = results[0].metrics["matrix"]
        row["matrices"] = {str(seed): r.metrics["matrix"] for seed, r in zip(seeds, results)}  # A[k][j] per seed
        rows[method] = row
    report = {
        "command": f"lfsd benchmark forgetting --concepts {concepts} --methods {','.join(methods)} "
        f"--seeds {','.join(map(str, seeds))} --json {out_json}"
        + (f" --adapter {adapter}" if adapter else "")
        + "".join(f" --set {o}" for o in overrides),
        "concepts": [d.name for d in dirs],
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, torch threads {params.runtime.threads}",
        "wall_seconds": round(time.time() - start, 1),
        "training": dataclasses.asdict(params.training),
        "forgetting": dataclasses.asdict(params.forgetting),
        "methods": rows,
    }
    Path(out_json).parent.mkdir(parents=True, exist_ok=True)
    Path(out_json).write_text(json.dumps(report, indent=2))
    if to_mlflow:  # after the JSON: the record never depends on a tracking store
        from benchmarks.mlflow_runs import log_sequence_runs

        ids = log_sequence_runs(
            "forgetting",
            runs,
            seeds,
            params.training,
            report["command"],
            figures=Path(out_json).parent / Path(out_json).stem,
        )
        log(f"logged {len(ids)} runs to MLflow experiment 'benchmark-forgetting' (lfsd ui to compare them)")
    return report


def apply_overrides(params, overrides: list[str]):
    """`training.KEY=VALUE` / `forgetting.KEY=VALUE` / `sampling.KEY=VALUE` / `runtime.KEY=VALUE` (threads,
    device, precision) on top of params.yaml, for development runs (threads: quality runs side by side on a
    small machine). Values are YAML, checked by the config's own coercion and validation. Anything else is
    refused."""
    from components.config import with_overrides

    return with_overrides(params, overrides, ("training", "forgetting", "sampling", "runtime"))


def step_time_probe(
    base: Path, concept_dir: Path, methods: list[str], cfg, work: Path, rounds: int = 3, log=print
) -> dict[str, dict]:
    """Seconds per training step of each method relative to `finetune`, measured in one interleaved
    run (round r trains every method once on the same concept), so a slow spell of the machine hits
    every method alike. The time is the whole task divided by its steps: the teacher's trajectory bank
    (KD) and the class images (prior preservation) are amortised into it, as a user pays them."""
    import shutil

    from components.lifelong import LifelongModel
    from components.training.concept import read_concept
    from components.training.loop import train_task
    from components.training.methods import get_method

    if "finetune" not in methods:
        return {}
    concept = read_concept(concept_dir)
    per_step: dict[str, list[float]] = {m: [] for m in methods}
    for r in range(rounds):
        for method in methods:
            model = LifelongModel.from_base(base, method)
            c = dataclasses.replace(cfg, method=method, seed=r)
            result = train_task(model, concept, get_method(method), c, Path(work) / f"{method}-{r}")
            per_step[method].append(result.seconds / c.steps)
    shutil.rmtree(work, ignore_errors=True)
    ref = float(np.median(per_step["finetune"]))
    out = {
        m: {
            "task_s_per_step": float(np.median(v)),
            "step_time_ratio_vs_finetune": float(np.median(v)) / ref,
            "step_time_ratio_per_round": [a / b for a, b in zip(v, per_step["finetune"])],
        }
        for m, v in per_step.items()
    }
    log("step time vs finetune: " + ", ".join(f"{m} x{o['step_time_ratio_vs_finetune']:.2f}" for m, o in out.items()))
    return out


def _save_visuals(result, prefix: Path) -> None:
    """Heatmap of A[k][j] and the last step's samples, one row per concept."""
    from components.evaluation.plots import save_heatmap, save_samples

    names = result.metrics["concepts"]
    save_heatmap(result.metrics["matrix"], names, f"{result.method}: fidelity A[k][j]", Path(f"{prefix}-heatmap.png"))
    save_samples(result.steps[-1].samples, names, Path(f"{prefix}-last-step.png"))
