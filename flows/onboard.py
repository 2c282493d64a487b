"""`onboard_concept`: the onboarding chain of `components.chains.onboard`, each step a Prefect task,
training launched as a Ray Train job. The order of the steps lives in the chain, not here."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from components.chains.onboard import OnboardResult, launcher, onboard
from components.publishing.summary import artifact_key, result_markdown
from components.workspace.layout import load_workspace
from flows.env import run_log

TASK_NAMES = {
    "validate": "validate concept",
    "nearness": "compare with the learned concepts",
    "version_dataset": "version dataset (DVC)",
    "train": "train (Ray Train)",
    "evaluate": "evaluate forgetting",
    "version_checkpoint": "version checkpoint (DVC + git)",
    "register": "register in MLflow",
    "gate": "promotion gate",
    "plan": "plan the erasure",
    "remove": "chain without the concept",
    "commit": "commit the removal (DVC + git)",
    "relearn": "relearn the later concepts",
    "purge": "purge every copy",
}
RETRIES = {
    "version_checkpoint": (1, 2),
    "register": (2, 5),
    "purge": (2, 5),
}  # (retries, delay s): transient DVC/MLflow errors


def as_task(name: str, fn, *args, **kwargs):
    """Run one chain step as a Prefect task (shown in the UI, retried where transient failures happen); the
    terminal says each step has started, so a long one (evaluation, DVC, registration) never looks hung."""
    retries, delay = RETRIES.get(name, (0, 0))
    run_log()(f"{TASK_NAMES.get(name, name)} ...")
    return task(fn, name=TASK_NAMES.get(name, name), cache_policy=NO_CACHE, retries=retries, retry_delay_seconds=delay)(
        *args, **kwargs
    )


@flow(name="onboard-concept", log_prints=True)
def onboard_concept(
    concept_dir: str,
    workspace: str | None = None,
    parent_run_id: str | None = None,
    wait: bool = True,
    overrides: list[str] | None = None,
) -> OnboardResult:
    """Teach one concept folder to the lifelong model. Bad input fails in `validate` and changes
    nothing; the same folder twice is a no-op; a failed gate ends Completed with the reason recorded.
    `overrides`: the command's `--set runtime.KEY=VALUE` items."""
    ws = load_workspace(workspace, overrides or ())
    result = onboard(
        ws,
        Path(concept_dir),
        launcher=launcher(ws),
        run_step=as_task,
        parent_run_id=parent_run_id,
        log=run_log(),
        wait=wait,
    )
    create_markdown_artifact(
        result_markdown(result),
        key=artifact_key("onboard", result.concept),
        description=f"onboarding of {result.concept}",
    )
    return result
