"""`lifelong_sequence`: concept folders onboarded in order (components.onboarding.sequence), each
through the `onboard_concept` subflow."""

from __future__ import annotations

from prefect import flow, get_run_logger

from components.onboarding.sequence import onboard_sequence
from components.onboarding.workspace import load_workspace
from flows.onboard import onboard_concept


@flow(name="lifelong-sequence", log_prints=True)
def lifelong_sequence(concept_dirs: list[str], workspace: str | None = None, run_name: str = "sequence",
                      wait: bool = True) -> list:
    """Each folder through `onboard_concept` (a subflow), in the given order; stops at the first failure."""
    from components.training.ray_runtime import ensure_ray

    ws = load_workspace(workspace)
    ensure_ray(ws.params.ray, ws.state_dir)  # once per process: Ray's start-up is not paid per concept
    return onboard_sequence(ws, concept_dirs, lambda d, parent: onboard_concept(d, str(ws.root), parent),
                            run_name=run_name, wait=wait, log=get_run_logger().info)
