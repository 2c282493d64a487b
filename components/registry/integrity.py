"""What a registered version's bytes must be, checked before anything is served or exported from them.

Two records are written when lfsd logs a version (packaging.log_lifelong_model):
- its index (`index.json`, shared_artifacts.py) holds the sha256 of every file of every content artifact
  (base, checkpoints, references, ledger) and of every file of the model's `code/`, which MLflow puts first on
  `sys.path` when it loads the model;
- the tag `lfsd.package_sha256` on its logged model holds the sha256 of the files MLflow wrote beside them
  (MLmodel, python_model.pkl, the environment files) and of the index, read back from the store.
The tag lives in the tracking store, the files in the artifact store (often another service with other
credentials): a file changed there afterwards, by a flipped bit or on purpose, no longer matches.

Checked where: `pyfunc.load_version` (lfsd generate) checks the tag's files and code/ on a downloaded copy
BEFORE MLflow unpickles python_model.pkl or imports code/ (`verify_package`; a version without the tag was
registered outside lfsd: refused unless trusted); `LfsdPyfunc.load_context` checks every content artifact
(`verify_tree`, whoever loads it); the export checks each file it downloads (`verify_download`). A mismatch
is one line naming the file and both hashes; nothing is served or exported. A version logged before
per-file hashes is checked by its folder hashes (the whole folder, once) where its index has them.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from components.checksums import file_digest

PACKAGE_TAG = "lfsd.package_sha256"
INDEX_PATH = "artifacts/index.json"  # where MLflow puts the `index` artifact inside a pyfunc model


class IntegrityError(ValueError):
    """A file of a version differs from (or is missing from) what was recorded when it was written."""


class UntrustedVersion(IntegrityError):
    """A version whose code and pickle lfsd did not record: loading it would run whatever they hold."""


def sha256_file(path: Path) -> str:
    return file_digest(path, "sha256")


def file_hashes(path: str | Path) -> dict[str, str]:
    """{relative path: sha256} of every file under a folder; {name: sha256} of a single file."""
    path = Path(path)
    if path.is_file():
        return {path.name: sha256_file(path)}
    return {p.relative_to(path).as_posix(): sha256_file(p) for p in sorted(path.rglob("*")) if p.is_file()}


def compare(label: str, where: str, expected: dict[str, str], found: dict[str, str], error=IntegrityError) -> None:
    """Raise `error` (one line: the file, both hashes) at the first file that is missing, extra or changed."""
    for rel in sorted(set(expected) | set(found)):
        exp, got = expected.get(rel), found.get(rel)
        name = f"{where}/{rel}" if where else rel
        if exp == got:
            continue
        if got is None:
            raise error(f"{label}: {name}: missing (the version's record: sha256 {exp})")
        if exp is None:
            raise error(f"{label}: {name}: not in the version's record (found sha256 {got}): refused")
        raise error(
            f"{label}: {name}: content hash differs from the version's index (expected sha256 {exp}, found {got})"
        )


def verify_tree(label: str, key: str, path: str | Path, index: dict, error=IntegrityError) -> None:
    """Check one content artifact (folder or file) against `index`: per file when the index has its files,
    else (a version logged before per-file hashes) by its folder hash."""
    from components.lifelong.ledger import folder_hash

    if key in index.get("files", {}):
        compare(label, key, index["files"][key], file_hashes(path), error)
        return
    expected = index["sha256"].get(key) or (index["shared"].get(key) or {}).get("sha256")
    if expected and Path(path).is_dir() and (found := folder_hash(Path(path))) != expected:
        raise error(
            f"{label}: {key}: content hash differs from the version's index (expected {expected}, found {found})"
        )


def verify_artifacts(label: str, index: dict, arts: dict[str, str], skip: tuple[str, ...] = ()) -> None:
    """Every content artifact of `index` present in `arts` ({key: local path}) checked, but those in `skip`
    (checked elsewhere); an absent one is the caller's to name (erased)."""
    for key in sorted(set(index.get("files", {})) | set(index["sha256"])):
        path = arts.get(key)
        if key not in skip and path and Path(path).exists():
            verify_tree(label, key, path, index)


def stage_code(src: Path, staging: Path) -> tuple[Path, dict[str, str]]:
    """A frozen copy of the code package `src` (what MLflow copies into code/, __pycache__ left out, as it
    does) and its {path under code/: sha256}: the files hashed are the files logged, whatever changes in
    `src` meanwhile."""
    import shutil

    out = Path(staging) / "code" / Path(src).name
    shutil.copytree(src, out, ignore=shutil.ignore_patterns("__pycache__"))
    return out, {f"{out.name}/{rel}": sha for rel, sha in file_hashes(out).items()}


def record_package(model_id: str) -> dict[str, str]:
    """After logging: hash the files MLflow wrote at the top of the stored model, and its index, and set
    them as the logged model's PACKAGE_TAG. Returns {path: sha256}."""
    import mlflow
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    client = mlflow.MlflowClient()
    repo = get_artifact_repository(client.get_logged_model(model_id).artifact_location)
    paths = [f.path for f in repo.list_artifacts("") if not f.is_dir] + [INDEX_PATH]
    with tempfile.TemporaryDirectory(prefix="lfsd-package-") as tmp:
        record = {p: sha256_file(Path(repo.download_artifacts(p, tmp))) for p in paths}
    client.set_logged_model_tags(model_id, {PACKAGE_TAG: json.dumps(record, sort_keys=True)})
    return record


def logged_model(uri: str):
    """The LoggedModel a models:/NAME/N, models:/NAME@ALIAS, models:/<model id> or runs:/ URI names; None
    for a path (nothing recorded about it)."""
    import mlflow

    client = mlflow.MlflowClient()
    ref = uri.removeprefix("models:/")
    if uri.startswith("models:/") and ("@" in ref or "/" in ref):
        if "@" in ref:
            mv = client.get_model_version_by_alias(*ref.split("@", 1))
        else:
            mv = client.get_model_version(*ref.rsplit("/", 1))
        source = str(mv.source)
        model_id = getattr(mv, "model_id", None) or (
            source.removeprefix("models:/") if source.startswith("models:/") else None
        )
    elif uri.startswith("models:/"):
        model_id = ref
    elif uri.startswith("runs:/"):
        import yaml
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        with tempfile.TemporaryDirectory(prefix="lfsd-mlmodel-") as tmp:
            mlmodel = yaml.safe_load(Path(get_artifact_repository(uri).download_artifacts("MLmodel", tmp)).read_text())
        model_id = mlmodel.get("model_id")
    else:
        return None
    return client.get_logged_model(model_id) if model_id else None


def verify_package(label: str, local: Path, tags: dict, trust: bool) -> None:
    """Before MLflow loads the downloaded model `local`: its MLmodel, python_model.pkl, environment files and
    index are what the tag recorded, its code/ what the index recorded. Without the tag (registered outside
    lfsd) or with a mismatch: UntrustedVersion / IntegrityError, unless `trust`."""
    from components.registry.shared_artifacts import read_index

    if trust:
        return
    if not tags.get(PACKAGE_TAG):
        raise UntrustedVersion(
            f"{label}: registered outside lfsd (no {PACKAGE_TAG} tag on its logged model): its python_model.pkl "
            f"and code/ would run here unchecked; refused (pass --trust if you trust whoever registered it)"
        )
    # Only the recorded files: MLflow reads no other top-level file (MLmodel, checked, names what it loads) and
    # writes one itself (registered_model_meta, into a local store when it loads a models:/ URI from it).
    recorded = json.loads(tags[PACKAGE_TAG])
    compare(label, "", recorded, {p: sha256_file(local / p) for p in recorded if (local / p).is_file()})
    code = read_index(local / INDEX_PATH)["code"]
    if not code:
        raise UntrustedVersion(f"{label}: its index records no hash of code/: refused (pass --trust to load it)")
    compare(label, "code", code, file_hashes(local / "code") if (local / "code").is_dir() else {})


_RECORDS: dict[tuple[str, str], dict] = {}  # (registry, artifact URI) -> what is recorded for files under it


def verify_download(uri: str, path: str, local: Path, error=IntegrityError) -> None:
    """Check one file the export downloaded (`path` inside the artifacts at `uri`) against its record, read once
    per URI: a version's (models:/, runs:/) from its tag and index; an artifact another version stores (a
    shared URI) from the index of the version that shares it, which the export reads first. `error`: the
    exception its callers already report (the export's ExportError)."""
    import mlflow

    registry = mlflow.get_registry_uri() if uri.startswith(("models:/", "runs:/")) else ""
    rec = _RECORDS.get((registry, uri))
    if rec is None and registry:
        rec = _RECORDS[(registry, uri)] = _version_record(uri, error)
    if rec is None:
        raise error(f"{uri}: {path}: no recorded hash (not read through a version's index): refused")
    prefix = next((p for p in rec["folders"] if path.startswith(p)), None)
    if path not in rec["files"] and prefix is not None:
        _verify_folder(uri, prefix, rec, error)
    expected = rec["files"].get(path)
    if expected is None and (rec["tagged"] or any(path.startswith(p) for p in rec["strict"])):
        raise error(f"{uri}: {path}: not in the version's record: refused")
    if expected is not None and (found := sha256_file(local)) != expected:
        raise error(
            f"{uri}: {path}: content hash differs from the version's index (expected sha256 {expected}, found {found})"
        )


def _version_record(uri: str, error) -> dict:
    """{files: {path: sha256}, folders: {prefix: folder hash} (legacy), strict: prefixes, tagged} of a version;
    the records of the artifacts it shares are filed under their URIs."""
    import yaml
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    from components.registry.shared_artifacts import INDEX_KEY, read_index

    lm = logged_model(uri)
    package = json.loads((lm.tags if lm else {}).get(PACKAGE_TAG) or "{}")
    rec = {"files": dict(package), "folders": {}, "strict": [], "tagged": bool(package)}
    repo = get_artifact_repository(uri)
    with tempfile.TemporaryDirectory(prefix="lfsd-record-") as tmp:
        mlmodel = Path(repo.download_artifacts("MLmodel", tmp))
        if package and sha256_file(mlmodel) != package.get("MLmodel"):
            raise error(
                f"{uri}: MLmodel: content hash differs from the version's record (expected sha256 "
                f"{package.get('MLmodel')}, found {sha256_file(mlmodel)})"
            )
        flavor = (yaml.safe_load(mlmodel.read_text()).get("flavors") or {}).get("python_function") or {}
        paths = {k: v["path"] for k, v in (flavor.get("artifacts") or {}).items()}
        index_file = repo.download_artifacts(paths[INDEX_KEY], tmp) if INDEX_KEY in paths else None
        index = read_index(index_file)
        if package and index_file:
            found = {paths[INDEX_KEY]: sha256_file(Path(index_file))}
            compare(uri, "", {paths[INDEX_KEY]: package.get(paths[INDEX_KEY], "")}, found, error)
    for key, where in paths.items():
        files = index["files"].get(key)
        if files is not None:
            rec["strict"] += [where, f"{where}/"]
            rec["files"] |= {f"{where}/{rel}": sha for rel, sha in files.items()}
            if list(files) == [where.rsplit("/", 1)[-1]]:  # a single-file artifact (the ledger)
                rec["files"][where] = next(iter(files.values()))
        elif key in index["sha256"]:
            rec["folders"][f"{where}/"] = index["sha256"][key]
    for key, spec in index["shared"].items():
        files = index["files"].get(key)
        legacy = {"files": {}, "folders": {"": spec["sha256"]}, "strict": [], "tagged": False}
        _RECORDS[("", spec["uri"])] = (
            {"files": dict(files), "folders": {}, "strict": [""], "tagged": True} if files else legacy
        )
    return rec


def _verify_folder(uri: str, prefix: str, rec: dict, error) -> None:
    """A version logged before per-file hashes: download the whole artifact folder once, check its folder hash,
    and take its files' hashes as the record from then on."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    from components.lifelong.ledger import folder_hash

    with tempfile.TemporaryDirectory(prefix="lfsd-legacy-") as tmp:
        folder = Path(get_artifact_repository(uri).download_artifacts(prefix.rstrip("/"), tmp) if prefix else tmp)
        if not prefix:
            import mlflow.artifacts

            mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)
        expected, found = rec["folders"].pop(prefix), folder_hash(folder)
        if found != expected:
            where = prefix or "."
            raise error(
                f"{uri}: {where}: content hash differs from the version's index (expected {expected}, found {found})"
            )
        rec["files"] |= {f"{prefix}{rel}": sha for rel, sha in file_hashes(folder).items()}
        rec["strict"].append(prefix)
