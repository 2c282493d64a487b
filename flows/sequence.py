"""`lifelong_sequence`: onboard concept folders in order under one MLflow parent run."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from components.onboarding.register import finish_parent_run, start_parent_run
from components.onboarding.workspace import load_workspace
from flows.onboard import onboard_concept


@flow(name="lifelong-sequence", log_prints=True)
def lifelong_sequence(concept_dirs: list[str], workspace: str | None = None, run_name: str = "sequence") -> list:
    """Each folder through `onboard_concept` (a subflow), in the given order; stops at the first failure."""
    from components.training.ray_job import ensure_ray

    logger = get_run_logger()
    ws = load_workspace(workspace)
    ensure_ray(ws.params.ray, ws.state_dir)  # once per process: Ray's start-up is not paid per concept
    parent = start_parent_run(ws, run_name, [Path(d).name for d in concept_dirs])
    results, status = [], "FAILED"
    try:
        for d in concept_dirs:
            results.append(onboard_concept(str(d), workspace=str(ws.root), parent_run_id=parent))
            logger.info("%s: %s %s", results[-1].concept, results[-1].status, results[-1].gate)
        status = "FINISHED"
    finally:
        last = next((r.metrics for r in reversed(results) if r.metrics), {})
        finish_parent_run(ws, parent, last, status)
    return results
