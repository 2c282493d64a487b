"""`forget_concept`: the removal chain of `components.chains.forget` (an erasure request), each step
a Prefect task; publishes what was erased as a markdown artifact."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from components.chains.forget import forget
from components.publishing.summary import artifact_key, result_markdown
from components.stepping import OnboardResult
from components.workspace.layout import load_workspace
from flows.env import run_log
from flows.onboard import as_task


@flow(name="forget-concept", log_prints=True)
def forget_concept(
    name: str,
    reason: str,
    workspace: str | None = None,
    force: bool = False,
    wait: bool = True,
    retrain_later: bool | None = None,
) -> OnboardResult:
    """Take concept `name` out of the lifelong model and purge its photos everywhere (refused, with
    nothing changed, for an unknown name, one erased before, or a gate failure while production holds it);
    `retrain_later` (None: params.yaml's `forget.retrain_later`) relearns the concepts after it."""
    result = forget(
        load_workspace(workspace),
        name,
        reason,
        run_step=as_task,
        log=run_log(),
        wait=wait,
        force=force,
        retrain_later=retrain_later,
    )
    create_markdown_artifact(
        result_markdown(result), key=artifact_key("forget", result.concept), description=f"erasure of {result.concept}"
    )
    return result
