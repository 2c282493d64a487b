"""A sequence's parent run in MLflow: the per-concept runs of one `lfsd sequence` (or inbox tick) nest
under it, so the UI shows them together with the sequence's final metrics."""

from __future__ import annotations

from components.workspace.layout import Workspace
from components.workspace.mlflow_store import client, open_tracking


def start_parent_run(ws: Workspace, run_name: str, concepts: list[str]) -> str:
    """An (ended) parent run a sequence's per-concept runs nest under; returns its id."""
    import mlflow

    open_tracking(ws)
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.set_tags({"lfsd.kind": "sequence", "lfsd.concepts": ",".join(concepts)})
        mlflow.log_params({"method": ws.params.training.method, "n_concepts": len(concepts)})
        return run.info.run_id


def finish_parent_run(ws: Workspace, run_id: str, metrics: dict, status: str = "FINISHED") -> None:
    """The sequence's numeric metrics on its parent run, which ends with `status`."""
    mlflow_client = client(ws)
    for k, v in metrics.items():
        if isinstance(v, (int, float)):
            mlflow_client.log_metric(run_id, k, float(v))
    mlflow_client.set_terminated(run_id, status)
