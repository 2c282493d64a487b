"""A registered version's files, one at a time: its URI resolved (an erased version refused) and single
artifacts downloaded into a scratch folder, so an export never fetches the base's weights or the photos.
Every failure names the URI and the file inside the model."""

from __future__ import annotations

import re
from pathlib import Path

NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")  # mlflow's codes for an unknown version/alias/file


class ExportError(RuntimeError):
    """The version cannot be exported: unknown URI, or a file missing or corrupted (names which)."""


class ExportRefused(ExportError):
    """The version must not be exported (erased), or cannot be exactly (a full-K/V task)."""


def resolve_version(uri: str) -> tuple[str, str, str]:
    """(URI pinned to a version, model name, version) for models:/NAME/N, models:/NAME@ALIAS or runs:/ID/PATH.
    Refuses an erased version; an unknown one is an ExportError naming it."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from components.registry.erased_versions import refusal

    if uri.startswith("runs:/"):
        run_id = uri.removeprefix("runs:/").split("/", 1)[0]
        if not run_id or "/" not in uri.removeprefix("runs:/"):
            raise ExportError(f"{uri}: expected runs:/RUN_ID/MODEL_PATH")
        return uri, f"run-{run_id[:12]}", ""
    ref = uri.removeprefix("models:/") if uri.startswith("models:/") else None
    if not ref or not ("@" in ref or re.fullmatch(r"[^/]+/\d+", ref)):
        raise ExportError(
            f"{uri}: not a registered version URI (expected models:/NAME/N, models:/NAME@ALIAS "
            f"or runs:/RUN_ID/MODEL_PATH)"
        )
    client = mlflow.MlflowClient()
    try:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            mv = client.get_model_version_by_alias(name, alias)
        else:
            name, number = ref.rsplit("/", 1)
            mv = client.get_model_version(name, number)
    except MlflowException as e:
        if e.error_code not in NOT_FOUND:
            raise  # the registry itself failed (unreachable, ...): not a statement about this URI
        raise ExportError(f"{uri}: no such registered model version ({str(e).splitlines()[0]})") from e
    refused = refusal(name, str(mv.version), mv.tags or {})
    if refused:
        raise ExportRefused(refused)
    return f"models:/{name}/{mv.version}", name, str(mv.version)


class VersionFiles:
    """Downloads single files of one logged model into a scratch folder; a missing file is an ExportError
    naming its path inside the model."""

    def __init__(self, uri: str, work: Path):
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        self.uri, self.work = uri, work
        try:
            self.repo = get_artifact_repository(uri)
        except Exception as e:
            raise ExportError(f"{uri}: cannot open the model's artifacts ({str(e).splitlines()[0]})") from e

    def get(self, path: str, required: bool = True) -> Path | None:
        from mlflow.exceptions import MlflowException

        try:
            local = Path(self.repo.download_artifacts(path, str(self.work)))
        except (MlflowException, OSError) as e:
            if isinstance(e, MlflowException) and e.error_code not in NOT_FOUND:
                raise  # the artifact store failed, not the file
            if not required:
                return None
            raise ExportError(
                f"{self.uri}: {path}: missing from the registered model ({str(e).strip().splitlines()[-1]})"
            ) from e
        if not local.is_file():
            if not required:
                return None
            raise ExportError(f"{self.uri}: {path}: missing from the registered model (not a file)")
        from components.registry.integrity import verify_download

        verify_download(self.uri, path, local, error=ExportError)  # as recorded when the version was written
        return local
