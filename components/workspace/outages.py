"""Which failures are outages of a service lfsd depends on (the DVC remote, MLflow, the Prefect API)
rather than faults of the input: an outage is retried by running the same command again, so an input
must never be set aside for one (the inbox quarantines a folder only for its own faults)."""

from __future__ import annotations

from collections.abc import Iterator

_UNREACHABLE = ("Connection refused", "Max retries exceeded", "Failed to establish", "API request to")


def causes(e: BaseException) -> Iterator[BaseException]:
    """`e` and every exception it was raised from or while handling."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def service_outage(e: BaseException) -> str | None:
    """ "DVC remote", "MLflow", "Prefect API" (or "a network service") when that service failing is anywhere
    in `e`'s cause chain."""
    return next((kind for err in causes(e) if (kind := outage_of(err)) is not None), None)


def outage_of(err: BaseException) -> str | None:
    """Which service's outage this one exception (not its causes) is, if any."""
    from components.versioning import VersioningError

    name, module, text = type(err).__name__, type(err).__module__, str(err)
    if isinstance(err, VersioningError) and err.step in ("dvc push", "dvc pull"):
        return "DVC remote"
    mlflow = "mlflow" in module or "Max retries exceeded" in text or name == "MlflowException"
    if mlflow and any(s in text for s in _UNREACHABLE):
        return "MLflow"
    if module.startswith(("httpx", "httpcore")) or "PrefectHTTPStatusError" in name:
        return "Prefect API"
    if isinstance(err, ConnectionError):
        return "a network service"
    return None
