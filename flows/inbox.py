"""Scheduled onboarding: every concept folder that lands in the inbox is onboarded, oldest name first.

    lfsd schedule --cron "*/30 * * * *"     # needs a Prefect server (docs/operations.md)

A folder is moved to `inbox/.done/` once onboarded (or recognised as already onboarded) and to
`inbox/.rejected/` with a `REJECTED.txt` report when validation refuses it; nothing else changes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from prefect import flow, get_run_logger

from components.onboarding.workspace import load_workspace
from flows.sequence import lifelong_sequence


def pending(inbox: Path) -> list[Path]:
    return sorted(p for p in inbox.iterdir() if p.is_dir() and not p.name.startswith(".")) if inbox.is_dir() else []


@flow(name="onboard-inbox", log_prints=True)
def onboard_inbox(workspace: str | None = None) -> list:
    from components.validation import ValidationError

    logger = get_run_logger()
    ws = load_workspace(workspace)
    inbox = ws.root / ws.params.pipeline.inbox
    results = []
    for folder in pending(inbox):
        try:
            results += lifelong_sequence([str(folder)], workspace=str(ws.root), run_name=f"inbox-{folder.name}")
            dest = inbox / ".done" / folder.name
        except ValidationError as e:
            logger.error("rejected %s:\n%s", folder.name, e)
            (folder / "REJECTED.txt").write_text(str(e) + "\n")
            dest = inbox / ".rejected" / folder.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(dest, ignore_errors=True)
        shutil.move(str(folder), dest)
    if not results:
        logger.info("inbox %s: nothing to onboard", inbox)
    return results
