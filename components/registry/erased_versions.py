"""A concept's erasure in MLflow: every model version that held it loses the concept's files and is
marked so it can never serve again; every run that drew it loses its sample grid.

What a registered version holds of a concept (see `packaging.py`): the task checkpoint (the concept's
LoRA and token, learned from its photos) and `references_NN` (copies of the photos, for ICGen). Both
are deleted from the version's logged model. The version itself stays, tagged `lfsd.erased` (the
concepts erased from it) and `lfsd.erasure` (when, why, which version replaced it): `promote` and
`rollback` refuse it and loading it fails with that message (`pyfunc.load_context`). A run's
`figures/samples.png` shows generated samples of every concept of its step; runs whose chain held the
concept lose it (their heatmap holds only numbers and stays).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

ERASED_TAG = "lfsd.erased"  # comma-separated names of the concepts erased from this version
ERASURE_NOTE_TAG = "lfsd.erasure"  # one line: what, when, why, which version serves without it
LEDGER_TAG = "lfsd.ledger"  # comma-separated concept names of the version's chain (a lineage tag)
SAMPLES_ARTIFACT = "figures/samples.png"


def _holds(tags: dict, concept: str) -> bool:
    return concept in str((tags or {}).get(LEDGER_TAG, "")).split(",")


def erased_from(tags: dict) -> list[str]:
    return [n for n in str((tags or {}).get(ERASED_TAG, "")).split(",") if n]


def versions_holding(client, model_name: str, concept: str) -> list:
    """Every model version whose chain held `concept`, oldest first."""
    versions = client.search_model_versions(f"name='{model_name}'")
    return sorted((v for v in versions if _holds(v.tags, concept)), key=lambda v: int(v.version))


def runs_holding(client, experiment_id: str, concept: str) -> list:
    """Every run of the experiment whose chain held `concept` (onboarding runs carry the ledger tag)."""
    runs = client.search_runs([experiment_id], f"tags.`{LEDGER_TAG}` LIKE '%{concept}%'", max_results=50_000)
    return [r for r in runs if _holds(r.data.tags, concept)]


def _artifact_repo(uri: str):
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    return get_artifact_repository(uri)


def _model_artifacts(client, version) -> tuple[object, dict[str, str]]:
    """(artifact repository of the version's logged model, {artifact key: path inside it})."""
    import yaml

    model_id = str(version.source).removeprefix("models:/")
    repo = _artifact_repo(client.get_logged_model(model_id).artifact_location)
    with tempfile.TemporaryDirectory(prefix="lfsd-mlmodel-") as tmp:
        mlmodel = yaml.safe_load(Path(repo.download_artifacts("MLmodel", tmp)).read_text())
    arts = mlmodel["flavors"]["python_function"].get("artifacts") or {}
    return repo, {key: spec["path"] for key, spec in arts.items()}


def _delete(repo, path: str) -> bool:
    """Delete `path` (file or folder) from an artifact repository; False when it was not there."""
    parent = str(Path(path).parent) if Path(path).parent != Path(".") else None
    present = {f.path for f in repo.list_artifacts(parent)}
    if path not in present:
        return False
    repo.delete_artifacts(path)
    return True


def erase_from_registry(client, model_name: str, experiment_id: str, concept: str, task: int, note: str) -> dict:
    """Remove `concept` (learned as task `task`) from every version and run that holds it; idempotent
    (a rerun after a kill finishes what is left). Returns what was touched, for the erasure record."""
    from components.registry.pyfunc import checkpoint_key, references_key

    touched = {"model_versions": [], "runs": []}
    for v in versions_holding(client, model_name, concept):
        repo, paths = _model_artifacts(client, v)
        for key in (references_key(task), checkpoint_key(task)):
            if key in paths:
                _delete(repo, paths[key])
        erased = sorted(set(erased_from(v.tags)) | {concept})
        client.set_model_version_tag(model_name, v.version, ERASED_TAG, ",".join(erased))
        client.set_model_version_tag(model_name, v.version, ERASURE_NOTE_TAG, note)
        touched["model_versions"].append(str(v.version))
    for r in runs_holding(client, experiment_id, concept):
        _delete(_artifact_repo(r.info.artifact_uri), SAMPLES_ARTIFACT)
        touched["runs"].append(r.info.run_id)
    return touched


def refusal(model_name: str, version: str, tags: dict) -> str | None:
    """Why `version` may not serve (it held an erased concept), or None."""
    erased = erased_from(tags)
    if not erased:
        return None
    return (
        f"{model_name} version {version} held {', '.join(erased)}, since erased "
        f"({(tags or {}).get(ERASURE_NOTE_TAG, 'see its tags')}); it cannot be promoted, rolled back to or loaded"
    )
