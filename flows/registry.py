"""`promote` and `rollback`: move `production` by hand (components.publishing.promotion), as flows."""

from __future__ import annotations

from prefect import flow, get_run_logger

from components.publishing import promotion
from components.workspace.layout import load_workspace


@flow(name="promote")
def promote(
    version: str, reason: str = "manual promotion", workspace: str | None = None, wait: bool = True
) -> str | None:
    """Point `production` at `version` (refused without lineage tags). Returns the replaced version."""
    return promotion.promote(load_workspace(workspace), version, reason, wait=wait, log=get_run_logger().info)


@flow(name="rollback")
def rollback(workspace: str | None = None, wait: bool = True) -> str:
    """Move `production` back to the version it replaced. Returns the new production version."""
    return promotion.rollback(load_workspace(workspace), wait=wait, log=get_run_logger().info)
