"""Model registry helpers built on ALIASES (stages are deprecated in MLflow 3).

    candidate   the newest version that passed the pipeline's checks, waiting for promotion
    production  what serving loads (`models:/<name>@production`)

`promote` refuses a version without lineage tags (dataset and checkpoint DVC md5s, git commit) and
records on the promoted version which version it replaced, so `rollback` can move `production` back.
"""

from __future__ import annotations

import time

from components.registry.erased_versions import refusal

CANDIDATE = "candidate"
PRODUCTION = "production"
PREVIOUS_PRODUCTION_TAG = "lfsd.previous_production"
PROMOTION_REASON_TAG = "lfsd.promotion_reason"
PROMOTED_AT_TAG = "lfsd.promoted_at"
ROLLED_BACK_AT_TAG = "lfsd.rolled_back_at"
REQUIRED_LINEAGE_TAGS = ("lfsd.dataset_dvc_md5", "lfsd.checkpoint_dvc_md5", "lfsd.git_commit")


class RegistryError(RuntimeError):
    """A registry operation was refused (missing lineage, nothing to roll back to, ...)."""


def _client(client=None):
    import mlflow

    return client or mlflow.MlflowClient()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def register_version(
    run_id: str, model_name: str, tags: dict[str, str] | None = None, *, artifact_name: str = "model"
) -> str:
    """Register the model logged as `artifact_name` in run `run_id` as a new version of `model_name`
    (created if needed) in the current registry, with `tags` on the version. Returns the version
    number as a string."""
    import mlflow

    version = mlflow.register_model(
        f"runs:/{run_id}/{artifact_name}", model_name, tags={k: str(v) for k, v in (tags or {}).items()} or None
    )
    return str(version.version)


def set_alias(model_name: str, alias: str, version: str | int, *, client=None) -> None:
    """Point `alias` of `model_name` at `version` (moving it if it pointed elsewhere)."""
    _client(client).set_registered_model_alias(model_name, alias, str(version))


def get_alias_version(model_name: str, alias: str, *, client=None) -> str | None:
    """The version `alias` points at; None if the alias (or the registered model) does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        model = _client(client).get_registered_model(model_name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    version = (model.aliases or {}).get(alias)
    return None if version is None else str(version)


def _version(c, model_name: str, version: str):
    from mlflow.exceptions import MlflowException

    try:
        return c.get_model_version(model_name, str(version))
    except MlflowException as exc:
        raise RegistryError(f"{model_name} version {version} does not exist: {exc.message}") from exc


FORGOT_TAG = "lfsd.forgot"  # on a version made by removing a concept: it has no dataset of its own


def missing_lineage(tags: dict[str, str]) -> list[str]:
    required = [t for t in REQUIRED_LINEAGE_TAGS if not (t == "lfsd.dataset_dvc_md5" and tags.get(FORGOT_TAG))]
    return [t for t in required if not str(tags.get(t, "")).strip()]


def promote(model_name: str, version: str | int, reason: str, *, client=None) -> str | None:
    """Move `production` to `version`. Refuses (RegistryError) a version lacking any lineage tag of
    REQUIRED_LINEAGE_TAGS. Tags the version with the production version it replaces
    (`lfsd.previous_production`) and `reason` (`lfsd.promotion_reason`). Returns the replaced
    version (None for a first promotion). Promoting the current production version is a no-op."""
    c = _client(client)
    version = str(version)
    mv = _version(c, model_name, version)
    refused = refusal(model_name, version, mv.tags or {})
    if refused:
        raise RegistryError(f"refusing to promote: {refused}")
    missing = missing_lineage(mv.tags or {})
    if missing:
        raise RegistryError(
            f"refusing to promote {model_name} version {version} to {PRODUCTION!r}: "
            f"missing lineage tags {', '.join(missing)}"
        )
    if not str(reason).strip():
        raise RegistryError("a promotion needs a reason")
    previous = get_alias_version(model_name, PRODUCTION, client=c)
    if previous == version:
        return previous
    if previous is None:
        if PREVIOUS_PRODUCTION_TAG in (mv.tags or {}):
            c.delete_model_version_tag(model_name, version, PREVIOUS_PRODUCTION_TAG)
    else:
        c.set_model_version_tag(model_name, version, PREVIOUS_PRODUCTION_TAG, previous)
    c.set_model_version_tag(model_name, version, PROMOTION_REASON_TAG, str(reason))
    c.set_model_version_tag(model_name, version, PROMOTED_AT_TAG, _now())
    c.set_registered_model_alias(model_name, PRODUCTION, version)  # last: the alias never sees half-written tags
    return previous


def rollback(model_name: str, *, client=None) -> str:
    """Move `production` back to the version named in the current production version's
    `lfsd.previous_production` tag. Returns that version. RegistryError if there is no production
    version, no recorded predecessor, or the predecessor no longer exists."""
    c = _client(client)
    current = get_alias_version(model_name, PRODUCTION, client=c)
    if current is None:
        raise RegistryError(f"{model_name} has no {PRODUCTION!r} alias: nothing to roll back")
    previous = str((_version(c, model_name, current).tags or {}).get(PREVIOUS_PRODUCTION_TAG, "")).strip()
    if not previous:
        raise RegistryError(
            f"{model_name} version {current} (production) records no previous production "
            f"version ({PREVIOUS_PRODUCTION_TAG}): nothing to roll back to"
        )
    refused = refusal(model_name, previous, _version(c, model_name, previous).tags or {})
    if refused:
        raise RegistryError(f"refusing to roll back: {refused}")
    c.set_model_version_tag(model_name, current, ROLLED_BACK_AT_TAG, _now())
    c.set_registered_model_alias(model_name, PRODUCTION, previous)
    return previous
