"""`promote` and `rollback`: move `production` by hand, with the same lineage checks as the gate."""

from __future__ import annotations

from prefect import flow, get_run_logger

from components.onboarding.workspace import load_workspace


@flow(name="promote")
def promote(version: str, reason: str = "manual promotion", workspace: str | None = None) -> str | None:
    """Point `production` at `version` (refused without lineage tags). Returns the replaced version."""
    from components.registry import promote as move, setup_tracking

    ws = load_workspace(workspace)
    setup_tracking(ws.root, ws.params.pipeline.experiment)
    replaced = move(ws.params.pipeline.model_name, version, reason)
    get_run_logger().info("production: %s -> %s (%s)", replaced, version, reason)
    return replaced


@flow(name="rollback")
def rollback(workspace: str | None = None) -> str:
    """Move `production` back to the version it replaced. Returns the new production version."""
    from components.registry import rollback as back, setup_tracking

    ws = load_workspace(workspace)
    setup_tracking(ws.root, ws.params.pipeline.experiment)
    version = back(ws.params.pipeline.model_name)
    get_run_logger().info("production rolled back to version %s", version)
    return version
