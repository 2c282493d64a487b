"""Where MLflow state lives: inside the workspace (`<repo>/.lfsd/mlflow`), never in $HOME or ./mlruns.

Nothing here imports mlflow at module level, so importing the package stays cheap.
"""

from __future__ import annotations

import os
from pathlib import Path

from components.state import ensure_state_dir, state_dir

DEFAULT_EXPERIMENT = "lfsd"


def mlflow_dir(repo_root: str | Path) -> Path:
    """`<repo>/.lfsd/mlflow` (follows $LFSD_STATE_DIR like the rest of the runtime state)."""
    return state_dir(repo_root).resolve() / "mlflow"


def artifact_root_default(repo_root: str | Path) -> Path:
    """`<repo>/.lfsd/mlflow/artifacts`: the artifact location of experiments in the local sqlite store."""
    return mlflow_dir(repo_root) / "artifacts"


_SET_HERE: set[str] = set()  # URIs `setup_tracking` chose; mlflow.set_tracking_uri also exports them to the env


def tracking_uri_default(repo_root: str | Path) -> str:
    """$MLFLOW_TRACKING_URI if the user set it, else `sqlite:///<repo>/.lfsd/mlflow/mlflow.db`. Why the
    check: mlflow.set_tracking_uri writes the variable too, so without it a process that opened one
    workspace's store would keep writing there for every other workspace it opens."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env and env not in _SET_HERE:
        return env
    return f"sqlite:///{(mlflow_dir(repo_root) / 'mlflow.db').as_posix()}"


def setup_tracking(repo_root: str | Path, experiment: str = DEFAULT_EXPERIMENT, tracking_uri: str | None = None) -> str:
    """Point mlflow (tracking and registry) at `tracking_uri` (default: `tracking_uri_default`) and
    make `experiment` the active one. For a sqlite store the folder is created and a new experiment
    gets `artifact_root_default` as its artifact location. Returns the experiment id."""
    import mlflow

    uri = tracking_uri or tracking_uri_default(repo_root)
    if uri != os.environ.get("MLFLOW_TRACKING_URI"):
        _SET_HERE.add(uri)
    if uri.startswith("sqlite:"):
        ensure_state_dir(repo_root)
        mlflow_dir(repo_root).mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        experiment_id = found.experiment_id
    else:
        location = None
        if uri.startswith("sqlite:"):
            root = artifact_root_default(repo_root)
            root.mkdir(parents=True, exist_ok=True)
            location = root.as_uri()
        experiment_id = client.create_experiment(experiment, artifact_location=location)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id
