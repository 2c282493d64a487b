"""Scheduled onboarding: every concept folder that lands in the inbox is onboarded, oldest name first.

    lfsd schedule --cron "*/30 * * * *"     # needs a Prefect server (docs/operations.md; flows/schedule.py)

Only folders that have settled are taken (nothing in them changed for `pipeline.inbox_settle_seconds`:
`components.onboarding.inbox`); one still being copied waits for a later tick. A folder is moved to
`inbox/.done/` once onboarded (or recognised as already onboarded) and to `inbox/.rejected/` with a
`REJECTED.txt` report when validation refuses it or its handling fails for any reason but a service
outage; nothing else changes. Symbolic links are never followed (`components.onboarding.inbox`).
"""

from __future__ import annotations

from prefect import flow

from components.onboarding.inbox import ensure_inbox, ready_folders, refuse_links, take, waiting_folders
from components.ray_train.warm import warm_training
from components.workspace.layout import load_workspace
from flows.env import run_logger
from flows.sequence import lifelong_sequence


def _onboard_ready(ws, inbox, settle: float, logger) -> list:
    """Each settled folder through `lifelong_sequence`, then moved to .done/ or, refused, to .rejected/."""
    onboard = lambda folder: lifelong_sequence([str(folder)], workspace=str(ws.root), run_name=f"inbox-{folder.name}")
    results = []
    for folder in ready_folders(inbox, settle):
        results += take(inbox, folder, onboard, logger.error)
    return results


@flow(name="onboard-inbox", log_prints=True)
def onboard_inbox(workspace: str | None = None) -> list:
    logger = run_logger()  # its lines are lfsd's own: shown on the terminal
    ws = load_workspace(workspace)
    inbox = ws.root / ws.params.pipeline.inbox
    settle = ws.params.pipeline.inbox_settle_seconds
    ensure_inbox(inbox)
    refuse_links(inbox, logger.error)
    with warm_training(ws.params.ray, ws.state_dir, enabled=ws.params.ray.keep_workers):  # one worker group per tick
        results = _onboard_ready(ws, inbox, settle, logger)
    waiting = waiting_folders(inbox, settle)
    if waiting:
        logger.info(
            "inbox %s: still settling (changed in the last %g s): %s", inbox, settle, ", ".join(p.name for p in waiting)
        )
    if not results:
        logger.info("inbox %s: nothing to onboard", inbox)
    return results
