"""`lifelong_sequence`: concept folders onboarded in order (components.chains.sequence), each
through the `onboard_concept` subflow."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_table_artifact

from components.chains.sequence import onboard_sequence
from components.publishing.summary import artifact_key, results_table
from components.workspace.layout import load_workspace
from flows.env import run_log
from flows.onboard import onboard_concept


@flow(name="lifelong-sequence", log_prints=True)
def lifelong_sequence(
    concept_dirs: list[str],
    workspace: str | None = None,
    run_name: str = "sequence",
    wait: bool = True,
    overrides: list[str] | None = None,
) -> list:
    """Each folder through `onboard_concept` (a subflow), in the given order; stops at the first failure."""
    from components.ray_train.runtime import ensure_ray

    ws = load_workspace(workspace, overrides or ())
    ensure_ray(ws.params.ray, ws.state_dir)  # once per process: Ray's start-up is not paid per concept
    results = onboard_sequence(
        ws,
        concept_dirs,
        lambda d, parent: onboard_concept(d, str(ws.root), parent, overrides=overrides),
        run_name=run_name,
        wait=wait,
        log=run_log(),
    )
    create_table_artifact(
        results_table(results),
        key=artifact_key("sequence", run_name),
        description=f"{len(results)} concepts onboarded by {run_name!r}",
    )
    return results
