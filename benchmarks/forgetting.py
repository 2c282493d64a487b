"""The forgetting benchmark: every method over one concept sequence, several seeds, one table.

    lfsd benchmark forgetting --concepts examples/concepts --methods lfs,finetune,prior-preservation \
        --seeds 0,1,2 --json docs/figures/forgetting.json

Each row: a method's sequence metrics as mean and std over seeds, its training seconds per task and
`step_time_ratio_vs_finetune` (median optimisation-step time relative to `finetune`, measured in the
same run). Heatmaps of A[k][j] and last-step sample grids are written next to the JSON.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from pathlib import Path

import numpy as np

METRIC_KEYS = ("final_fidelity", "avg_forgetting", "bwt", "rcf_preservation", "rcf_class_acc",
               "new_concept_fidelity", "text_alignment", "final_clip_i")


def run(concepts: Path, methods: list[str], seeds: list[int], out_json: Path, base: Path, evaluator_dir: Path,
        work: Path, log=print) -> dict:
    import torch

    from components.config import load_params
    from components.evaluation.embedder import load_evaluator
    from components.evaluation.forgetting import ForgettingEvaluator
    from components.training.sequence import run_sequence

    params = load_params()
    torch.set_num_threads(2)
    clip, dino = load_evaluator(evaluator_dir)
    dirs = sorted(p for p in Path(concepts).iterdir() if (p / "concept.yaml").is_file())
    start = time.time()
    runs: dict[str, list] = {m: [] for m in methods}
    for seed in seeds:
        evaluator = ForgettingEvaluator(clip, dino, params.forgetting)  # theta_0 images shared across methods
        for method in methods:
            cfg = dataclasses.replace(params.training, seed=seed, method=method)
            result = run_sequence(base, dirs, method, cfg, evaluator, Path(work) / f"seed{seed}" / method, log=log)
            runs[method].append(result)
            _save_visuals(result, Path(out_json).parent / "forgetting" / f"{method}-seed{seed}")
    rows = {}
    finetune_step = np.median([t.step_seconds for r in runs.get("finetune", []) for t in r.tasks]) if "finetune" in runs else None
    for method, results in runs.items():
        row = {}
        for key in METRIC_KEYS:
            vals = [r.metrics[key] for r in results]
            row[key] = {"mean": float(np.mean(vals)), "std": float(np.std(vals)), "per_seed": vals}
        row["train_s_per_task"] = float(np.mean([t.seconds for r in results for t in r.tasks]))
        step = float(np.median([t.step_seconds for r in results for t in r.tasks]))
        row["step_s"] = step
        row["step_time_ratio_vs_finetune"] = step / finetune_step if finetune_step else None
        row["matrix_seed0"] = results[0].metrics["matrix"]
        rows[method] = row
    report = {
        "command": f"lfsd benchmark forgetting --concepts {concepts} --methods {','.join(methods)} "
                   f"--seeds {','.join(map(str, seeds))} --json {out_json}",
        "concepts": [d.name for d in dirs],
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, torch threads 2",
        "wall_seconds": round(time.time() - start, 1),
        "training": dataclasses.asdict(params.training),
        "forgetting": dataclasses.asdict(params.forgetting),
        "methods": rows,
    }
    Path(out_json).parent.mkdir(parents=True, exist_ok=True)
    Path(out_json).write_text(json.dumps(report, indent=2))
    return report


def _save_visuals(result, prefix: Path) -> None:
    """Heatmap of A[k][j] and the last step's samples, one row per concept."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from components.pretraining.data import to_uint8
    from components.visuals import save_grid

    prefix.parent.mkdir(parents=True, exist_ok=True)
    a = np.array(result.metrics["matrix"], dtype=float)
    fig, ax = plt.subplots(figsize=(4, 3.4))
    im = ax.imshow(a, vmin=0, vmax=1, cmap="viridis")
    ax.set_xlabel("concept j")
    ax.set_ylabel("after task k")
    ax.set_xticks(range(a.shape[1]), [n[:6] for n in result.metrics["concepts"]], rotation=45)
    ax.set_yticks(range(a.shape[0]), range(1, a.shape[0] + 1))
    for (i, j), v in np.ndenumerate(a):
        if v == v:
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w")
    ax.set_title(f"{result.method}: fidelity A[k][j]")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(f"{prefix}-heatmap.png", dpi=100)
    plt.close(fig)
    last = result.steps[-1].samples
    images = np.concatenate([to_uint8(last[name]) for name in result.metrics["concepts"]])
    save_grid(images, Path(f"{prefix}-last-step.png"), cols=len(next(iter(last.values()))))
