"""A workspace's one way into MLflow: its tracking set up (store, experiment), the client, and the two
questions recovery asks of the registry. Every component that talks to MLflow for a workspace comes
through here, so the store and experiment are named in one place (`params.yaml pipeline.experiment`)."""

from __future__ import annotations

from components.workspace.layout import Workspace


def open_tracking(ws: Workspace) -> str:
    """Point mlflow at this workspace's tracking store and experiment; returns the experiment id."""
    from components.registry import setup_tracking

    return setup_tracking(ws.root, ws.params.pipeline.experiment)


def client(ws: Workspace):
    """An `MlflowClient` on this workspace's store (tracking opened first)."""
    import mlflow

    open_tracking(ws)
    return mlflow.MlflowClient()


def registered_version(ws: Workspace, checkpoint_md5: str):
    """The model version already registered for this checkpoint, if any."""
    import mlflow

    try:
        versions = client(ws).search_model_versions(f"name='{ws.params.pipeline.model_name}'")
    except mlflow.exceptions.MlflowException:
        return None
    return next((v for v in versions if (v.tags or {}).get("lfsd.checkpoint_dvc_md5") == checkpoint_md5), None)


def end_killed_concept_runs(ws: Workspace) -> list[str]:
    """End as KILLED the concept runs of this workspace left RUNNING by a dead writer (call it only
    under the writer lock); a run is this workspace's when its `lfsd.git_commit` is in this repo.
    Returns the ids of the runs it ended."""
    from components.registry import mlflow_dir, tracking_uri_default
    from components.versioning.git import has_commit

    if tracking_uri_default(ws.root).startswith("sqlite:") and not (mlflow_dir(ws.root) / "mlflow.db").exists():
        return []  # no store yet: no run can be left RUNNING (and bad input must not create one)
    import mlflow

    exp = open_tracking(ws)
    mlflow_client = mlflow.MlflowClient()
    runs = mlflow_client.search_runs([exp], "attributes.status = 'RUNNING' and tags.`lfsd.kind` = 'concept'")
    ours = [r for r in runs if (c := r.data.tags.get("lfsd.git_commit")) and has_commit(ws.root, c)]
    for r in ours:
        mlflow_client.set_terminated(r.info.run_id, "KILLED")
    return [r.info.run_id for r in ours]
