"""Several concepts in order under one MLflow parent run, holding the writer lock for the whole run
(so another writer cannot slip a concept in between two of the sequence's), training them all on one
Ray worker group (`ray.keep_workers`; components/ray_train/warm.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from components.publishing.parent_run import finish_parent_run, start_parent_run
from components.ray_train.warm import warm_training
from components.workspace.layout import Workspace
from components.workspace.lock import writer_lock


def onboard_sequence(
    ws: Workspace,
    concept_dirs: list[str],
    onboard_one: Callable[[str, str], object],
    *,
    run_name: str = "sequence",
    wait: bool = True,
    log: Callable[[str], None] = print,
) -> list:
    """`onboard_one(folder, parent_run_id)` for each folder in order; stops at the first failure."""
    with (
        writer_lock(ws.root, f"sequence {run_name}", wait=wait, log=log),
        warm_training(ws.params.ray, ws.state_dir, enabled=ws.params.ray.keep_workers),
    ):
        parent = start_parent_run(ws, run_name, [Path(d).name for d in concept_dirs])
        results, status = [], "FAILED"
        try:
            for d in concept_dirs:
                t0 = time.time()
                results.append(onboard_one(str(d), parent))
                results[-1].seconds["concept_wall"] = round(time.time() - t0, 2)  # the whole call, runner included
                log(f"{results[-1].concept}: {results[-1].status} {results[-1].gate}")
            status = "FINISHED"
        finally:
            last = next((r.metrics for r in reversed(results) if r.metrics), {})
            finish_parent_run(ws, parent, last, status)
    return results
