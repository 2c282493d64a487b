"""A failure of a service lfsd depends on, as one line naming the service and what to do.

The chain is built so that each of these leaves `production` untouched and the workspace either as it
was (failure before the commit) or resumable by running the same command again (after it)."""

from __future__ import annotations

import os


def _chain(e: BaseException):
    while e is not None:
        yield e
        e = e.__cause__ or e.__context__


def service_failure(e: BaseException) -> str | None:
    """The one-line message for a service failure anywhere in `e`'s cause chain, else None."""
    from components.redaction import redact, redact_text
    from components.versioning import VersioningError

    for err in _chain(e):
        name, text = type(err).__name__, redact_text(str(err))  # the URL it failed on may hold a password
        if isinstance(err, VersioningError) and err.step in ("dvc push", "dvc pull"):
            return (
                f"error: the DVC remote refused {err.step!r} of {err.path}: "
                f"{redact_text(err.detail.splitlines()[-1]) if err.detail else ''}"
                "\n  check the remote (`dvc remote list`, its credentials and space), then run the same command "
                "again: nothing was committed"
            )
        mlflow_error = "mlflow" in type(err).__module__ or "Max retries exceeded" in text or name == "MlflowException"
        unreachable = ("Connection refused", "Max retries exceeded", "Failed to establish", "API request to")
        if mlflow_error and any(s in text for s in unreachable):
            uri = redact(os.environ.get("MLFLOW_TRACKING_URI")) or "the workspace's sqlite store"
            return (
                f"error: the MLflow tracking server ({uri}) is unreachable: {text.splitlines()[0][:200]}"
                "\n  start it or fix MLFLOW_TRACKING_URI, then run the same command again: a concept already "
                "committed is registered then, none is trained twice; production is unchanged"
            )
        if type(err).__module__.startswith(("httpx", "httpcore")) or "PrefectHTTPStatusError" in name:
            url = redact(os.environ.get("PREFECT_API_URL")) or "the Prefect API"
            return (
                f"error: the Prefect API ({url}) is unreachable: {text.splitlines()[0][:200] if text else name}"
                "\n  start the server (infra/prefect/start-server.sh) or unset PREFECT_API_URL to use a "
                "temporary one, then run the same command again: nothing was changed"
            )
    return None
