"""Artifacts a model version shares with the version before it: each stored once, found by hash.

Every version of the lifelong model needs the base, every task checkpoint of its chain and each concept's
reference images. Copied into every version, that is O(k) bytes per version and O(k^2) over a chain: at 50
concepts on the embedded base, 1 GB of base copies alone; on an SD 1.5 base, 100 GB (docs/results.md,
"Past 50, on paper"). So a version logs only what the newest registered version does not already hold
under the same artifact key with the same content hash (`folder_hash`); for the rest, `index.json` (the
version's `index` artifact) records where the content lives (an artifact URI inside the version that
logged it) and its hash. Loading downloads each shared artifact from there and checks its files' hashes
(the index holds every file's, integrity.py).

Why the same key as well as the same hash: a task checkpoint and a reference set belong to one concept
(task numbers are never reused in a workspace), so every version that shares a concept's files holds the
concept, and an erasure that deletes the one stored copy (`erasure.py`) removes it from exactly the
versions it must refuse anyway. The index is all a reader needs: it names the hash of every content
artifact, where it is stored or not.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

INDEX_KEY = "index"
INDEX_FILE = "index.json"


def content_hashes(artifacts: dict[str, str], skip: tuple[str, ...]) -> dict[str, str]:
    """{key: folder_hash} of every artifact folder except `skip` (the ledger: it names the others)."""
    from components.lifelong.ledger import folder_hash

    return {key: folder_hash(Path(path)) for key, path in artifacts.items() if key not in skip and Path(path).is_dir()}


def split_shared(artifacts: dict[str, str], hashes: dict[str, str], stored: dict[str, dict]) -> tuple[dict, dict]:
    """(artifacts to log, {key: {"sha256", "uri"}} already stored): a key is shared when the newest version
    stores content of that key with the same hash."""
    to_log, shared = {}, {}
    for key, path in artifacts.items():
        known = stored.get(key)
        if known and key in hashes and known["sha256"] == hashes[key]:
            shared[key] = {"sha256": hashes[key], "uri": known["uri"]}
        else:
            to_log[key] = path
    return to_log, shared


def write_index(
    staging: Path,
    hashes: dict[str, str],
    shared: dict[str, dict],
    files: dict[str, dict[str, str]] | None = None,
    code: dict[str, str] | None = None,
) -> Path:
    """The version's index: folder hashes, shared artifacts, and (integrity.py) the sha256 of every file of
    every content artifact (`files`, by key) and of the model's code/ (`code`)."""
    out = Path(staging) / INDEX_FILE
    record = {"sha256": hashes, "shared": shared, "files": files or {}, "code": code or {}}
    out.write_text(json.dumps(record, indent=1, sort_keys=True))
    return out


def read_index(path: str | Path | None) -> dict:
    """The index of a version (empty parts for a version logged before the index or before per-file hashes)."""
    if not path or not Path(path).is_file():
        return {"sha256": {}, "shared": {}, "files": {}, "code": {}}
    data = json.loads(Path(path).read_text())
    return {part: dict(data.get(part) or {}) for part in ("sha256", "shared", "files", "code")}


def stored_by_version(client, version) -> dict[str, dict]:
    """{key: {"sha256", "uri"}} of every content artifact `version` (a ModelVersion) holds, stored in it or
    shared from an earlier one. Empty for a version logged before the index."""
    import yaml
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    model_id = str(version.source).removeprefix("models:/")
    location = client.get_logged_model(model_id).artifact_location.rstrip("/")
    repo = get_artifact_repository(location)
    with tempfile.TemporaryDirectory(prefix="lfsd-index-") as tmp:
        mlmodel = yaml.safe_load(Path(repo.download_artifacts("MLmodel", tmp)).read_text())
        paths = {k: s["path"] for k, s in (mlmodel["flavors"]["python_function"].get("artifacts") or {}).items()}
        if INDEX_KEY not in paths:
            return {}
        index = read_index(repo.download_artifacts(paths[INDEX_KEY], tmp))
    out = dict(index["shared"])
    for key, sha in index["sha256"].items():
        if key not in out and key in paths:
            out[key] = {"sha256": sha, "uri": f"{location}/{paths[key]}"}
    return out


def stored_by_newest(client, model_name: str) -> dict[str, dict]:
    """What the newest registered version of `model_name` holds (empty when there is none yet)."""
    versions = list(client.search_model_versions(f"name='{model_name}'"))
    if not versions:
        return {}
    return stored_by_version(client, max(versions, key=lambda v: int(v.version)))


def fetch_shared(index: dict, into: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Download every shared artifact of `index` under `into`: ({key: local path}, {key: why it is missing}).
    Missing is what an erasure deleted (or a damaged store): the caller names the concepts. A copy that
    differs from the index is never used: IntegrityError (a ValueError) naming the file and both hashes."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    from components.registry.integrity import verify_tree

    local, missing = {}, {}
    for key, spec in sorted(index["shared"].items()):
        try:
            path = Path(mlflow.artifacts.download_artifacts(artifact_uri=spec["uri"], dst_path=str(Path(into) / key)))
        except (MlflowException, OSError) as e:
            missing[key] = (
                f"not at {spec['uri']} ({str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__})"
            )
            continue
        if not path.is_dir() or not any(path.iterdir()):
            missing[key] = f"not at {spec['uri']}"
            continue
        verify_tree(f"artifact {key!r} from {spec['uri']}", key, path, index)
        local[key] = str(path)
    return local, missing
