"""Moving `production` by hand, under the workspace's writer lock (a person promoting while the
schedule onboards must not interleave with the gate)."""

from __future__ import annotations

from collections.abc import Callable

from components.workspace.layout import Workspace
from components.workspace.lock import writer_lock
from components.workspace.mlflow_store import client as workspace_client
from components.workspace.mlflow_store import open_tracking


def preview(ws: Workspace, version: str) -> str:
    """What promoting `version` would change: its model card, then the difference against production."""
    import mlflow

    from components.evaluation.scorecard import CARD_SECTION
    from components.registry import PRODUCTION, get_alias_version
    from components.registry.aliases import RegistryError
    from components.registry.model_card import promotion_diff, version_card

    name, client = ws.params.pipeline.model_name, workspace_client(ws)
    try:
        card = version_card(client, name, version)
        description = client.get_model_version(name, version).description or ""
    except mlflow.exceptions.MlflowException as e:
        raise RegistryError(f"{name} version {version} does not exist: {e.message}") from e
    if CARD_SECTION in description:  # a migrated chain's scorecard against the old chain (`lfsd migrate`)
        card += "\n\n" + description[description.index(CARD_SECTION) :].strip()
    return card + "\n\n" + promotion_diff(client, name, get_alias_version(name, PRODUCTION), version)


def promote(
    ws: Workspace, version: str, reason: str, *, wait: bool = True, log: Callable[[str], None] = print
) -> str | None:
    """Point `production` at `version` (refused without lineage tags). Returns the replaced version."""
    from components.registry import promote as move

    with writer_lock(ws.root, f"promote {version}", wait=wait, log=log):
        open_tracking(ws)
        replaced = move(ws.params.pipeline.model_name, version, reason)
    log(f"production: {replaced} -> {version} ({reason})")
    return replaced


def rollback(ws: Workspace, *, wait: bool = True, log: Callable[[str], None] = print) -> str:
    """Move `production` back to the version it replaced. Returns the new production version."""
    from components.registry import rollback as back

    with writer_lock(ws.root, "rollback", wait=wait, log=log):
        open_tracking(ws)
        version = back(ws.params.pipeline.model_name)
    log(f"production rolled back to version {version}")
    return version
