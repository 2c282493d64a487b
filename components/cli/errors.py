"""A failure of a service lfsd depends on, as one line naming the service and what to do.

The chain is built so that each of these leaves `production` untouched and the workspace either as it
was (failure before the commit) or resumable by running the same command again (after it)."""

from __future__ import annotations

import os


def service_failure(e: BaseException) -> str | None:
    """The one-line message for a service failure anywhere in `e`'s cause chain, else None (which failures
    are outages: `components.workspace.outages`, also what the inbox asks before quarantining a folder)."""
    from components.redaction import redact, redact_text
    from components.workspace.outages import causes, outage_of

    for err in causes(e):
        kind, text = outage_of(err), redact_text(str(err))  # the URL it failed on may hold a password
        if kind == "DVC remote":
            return (
                f"error: the DVC remote refused {err.step!r} of {err.path}: "
                f"{redact_text(err.detail.splitlines()[-1]) if err.detail else ''}"
                "\n  check the remote (`dvc remote list`, its credentials and space), then run the same command "
                "again: nothing was committed"
            )
        if kind == "MLflow":
            uri = redact(os.environ.get("MLFLOW_TRACKING_URI")) or "the workspace's sqlite store"
            return (
                f"error: the MLflow tracking server ({uri}) is unreachable: {text.splitlines()[0][:200]}"
                "\n  start it or fix MLFLOW_TRACKING_URI, then run the same command again: a concept already "
                "committed is registered then, none is trained twice; production is unchanged"
            )
        if kind == "Prefect API":
            url = redact(os.environ.get("PREFECT_API_URL")) or "the Prefect API"
            first = text.splitlines()[0][:200] if text else type(err).__name__
            return (
                f"error: the Prefect API ({url}) is unreachable: {first}"
                "\n  start the server (infra/prefect/start-server.sh) or unset PREFECT_API_URL to use a "
                "temporary one, then run the same command again: nothing was changed"
            )
    return None
