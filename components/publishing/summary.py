"""What an onboarding tells a person afterwards, as markdown and table rows (the Prefect flows publish
them as artifacts; nothing here imports Prefect): the concept, its model version, the metrics, the
gate's decision and where its MLflow run is."""

from __future__ import annotations

import os

from components.redaction import redact
from components.stepping import OnboardResult

LOCAL_UI = "http://127.0.0.1:5000"  # `lfsd ui`'s default address
METRICS = ("new_concept_fidelity", "final_fidelity", "avg_forgetting", "rcf_similarity")


def run_link(run_id: str) -> str:
    """The run in the MLflow UI: the tracking server's own page when one is set, else `lfsd ui`'s. Never
    with the URI's credentials: the browser asks for the login itself."""
    server = os.environ.get("MLFLOW_TRACKING_URI", "")
    ui = redact(server.rstrip("/"), drop_user=True) if server.startswith(("http://", "https://")) else LOCAL_UI
    return f"{ui}/#/runs/{run_id}" if run_id else ""


def result_markdown(r: OnboardResult) -> str:
    if r.status == "already-onboarded":
        return f"### {r.concept}: already onboarded\n\nDataset `{r.dataset}`; nothing changed."
    title = (
        f"### {r.concept}: erased; model version {r.version} holds everything else"
        if r.status == "forgotten"
        else f"### {r.concept}: model version {r.version}"
    )
    lines = [
        title,
        "",
        f"- checkpoint `{r.checkpoint}`, dataset `{r.dataset}`",
        f"- gate **{r.gate}**",
        f"- production is version {r.production}",
        f"- MLflow run: [{r.run_id[:12]}]({run_link(r.run_id)})",
        "",
        "| metric | value |",
        "| --- | --- |",
    ]
    lines += [f"| {k} | {r.metrics[k]:.3f} |" for k in METRICS if k in r.metrics]
    return "\n".join(lines)


def results_table(results: list[OnboardResult]) -> list[dict]:
    """One row per concept of a sequence (what the sequence flow's table artifact shows)."""
    return [
        {
            "concept": r.concept,
            "status": r.status,
            "version": r.version,
            "gate": r.gate.split(":")[0],
            "production": r.production or "",
            **{k: round(float(r.metrics[k]), 3) for k in METRICS if k in r.metrics},
            "mlflow_run": run_link(r.run_id),
        }
        for r in results
    ]


def artifact_key(prefix: str, name: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes."""
    return "-".join(filter(None, "".join(c if c.isalnum() else "-" for c in f"{prefix}-{name}".lower()).split("-")))
