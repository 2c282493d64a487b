"""Benchmarks in MLflow, where users compare things: one run per method x seed under an experiment named
after the benchmark, with the metric names an onboarding run uses (`final_fidelity`, `avg_forgetting`,
..., `fidelity.<concept>` at step = task index), so the UI's compare view puts methods side by side.
The JSON in docs/ stays the record; this is a view of the same numbers, logged after they exist."""

from __future__ import annotations

import dataclasses
from pathlib import Path

EXPERIMENT_PREFIX = "benchmark-"


def log_sequence_runs(
    benchmark: str,
    runs: dict[str, list],
    seeds: list[int],
    training,
    command: str,
    figures: Path | None = None,
    root: Path | None = None,
) -> list[str]:
    """`runs`: method -> one SequenceResult per seed (in `seeds` order). Returns the MLflow run ids.
    The store is the workspace's (`root`, default: the workspace around the current directory, else it)."""
    import mlflow

    from components.publishing.run_story import log_forgetting_history
    from components.registry import setup_tracking
    from components.state import find_workspace

    root = Path(root or find_workspace(Path.cwd()) or Path.cwd())
    setup_tracking(root, EXPERIMENT_PREFIX + benchmark)
    ids = []
    for method, results in runs.items():
        for seed, result in zip(seeds, results):
            tags = {
                "lfsd.kind": "benchmark",
                "lfsd.benchmark": benchmark,
                "lfsd.method": method,
                "lfsd.seed": str(seed),
                "lfsd.command": command,
            }
            with mlflow.start_run(run_name=f"{method}-seed{seed}", tags=tags) as run:
                cfg = dataclasses.asdict(dataclasses.replace(training, seed=seed, method=method))
                mlflow.log_params({f"training.{k}": v for k, v in cfg.items() if k != "class_candidates"})
                m = result.metrics
                mlflow.log_metrics({k: float(v) for k, v in m.items() if isinstance(v, (int, float))})
                log_forgetting_history(m)
                for k, task in enumerate(result.tasks, 1):
                    mlflow.log_metric("train_seconds", float(task.seconds), step=k)
                for png in sorted(Path(figures).glob(f"{method}-seed{seed}-*.png")) if figures else ():
                    mlflow.log_artifact(str(png), "figures")
                ids.append(run.info.run_id)
    return ids
