"""Before any write: make the workspace whole again after a killed writer, and finish what it had
committed. Onboardings committed but not registered are registered (`finish.register_committed`);
removals committed but not registered or not purged are finished (`erasure.removal_steps.finish_removal`): an
erasure, once committed, always completes."""

from __future__ import annotations

from components.erasure.removal_steps import PURGED_TAG, finish_removal, is_removal
from components.onboarding.finish import register_committed
from components.stepping import Log, OnboardResult, StepRunner, Timed, run_plain
from components.workspace.layout import Workspace
from components.workspace.recovery import recover


def unpurged_removals(ws: Workspace) -> list:
    """Committed removal checkpoints whose model version is missing or not marked purged."""
    from components.versioning.store import committed_record
    from components.workspace.mlflow_store import registered_version

    out = []
    for ckpt in ws.checkpoints():
        if is_removal(ckpt):
            v = registered_version(ws, committed_record(ws.root, ws.rel(ckpt)).md5)
            if v is None or PURGED_TAG not in (v.tags or {}):
                out.append(ckpt)
    return out


def catch_up(
    ws: Workspace, *, run_step: StepRunner = run_plain, parent_run_id: str | None = None, log: Log = print
) -> list[OnboardResult]:
    """Call under the writer lock. Returns what was finished, in chain order."""
    finished = [
        register_committed(ws, ckpt, run_step=run_step, parent_run_id=parent_run_id, log=log)
        for ckpt in recover(ws, log)
        if not is_removal(ckpt)
    ]
    for ckpt in unpurged_removals(ws):
        log(f"{ckpt.name} was committed but not finished (its writer was killed): finishing the erasure now")
        finished.append(finish_removal(ws, ckpt, Timed(run_step), log))
    return finished
