"""Making a workspace whole again before a write, after a writer died (SIGKILL, power loss) mid-step.

Runs under the writer lock, so nothing else is writing. Git's HEAD is the truth:
- a checkpoint folder or dataset HEAD does not know is an unfinished attempt: removed, with its .dvc
  file and .gitignore line put back as HEAD has them (Ray Train's own resumable checkpoints, under
  the state folder, are kept: the rerun of that concept resumes from them);
- a committed checkpoint or dataset missing from the working tree is brought back (`dvc pull`);
- a committed checkpoint with no registered model version was killed between its commit and its
  registration: it is returned, for the chain to register (never to retrain);
- an MLflow run of a killed attempt still marked RUNNING is ended as KILLED.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from components.workspace.layout import CHECKPOINT_RE, HISTORY_FILE, METRICS_DIR, METRICS_FILE, RECORDS_DIR, Workspace

Log = Callable[[str], None]


def discard_unfinished(ws: Workspace, log: Log) -> list[str]:
    """Remove what HEAD does not know from checkpoints/ and data/concepts/; returns what was removed."""
    from components.versioning.git import committed_names, restore_to_head, uncommitted

    chain = ws.checkpoints()
    learned = {
        n.removesuffix(".dvc") for n in committed_names(ws.root, ws.params.pipeline.data_dir) if n.endswith(".dvc")
    }
    removed = []
    for folder, keep in ((ws.checkpoint_dir, {p.name for p in chain}), (ws.data_dir, learned)):
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            unfinished = p.is_dir() and p.name not in keep and (CHECKPOINT_RE.match(p.name) or folder == ws.data_dir)
            if unfinished:
                shutil.rmtree(p)
                removed.append(ws.rel(p))
        stray = [rel for rel in uncommitted(ws.root, ws.rel(folder)) if rel.endswith((".dvc", ".gitignore"))]
        restore_to_head(ws.root, stray)
        removed += stray
    metrics = [rel for rel in uncommitted(ws.root, METRICS_DIR) if rel in (METRICS_FILE, HISTORY_FILE)]
    records = uncommitted(ws.root, RECORDS_DIR)  # an erasure record whose commit never happened
    restore_to_head(ws.root, metrics + records)  # written for a commit that never happened
    removed += metrics + records
    if removed:
        log(f"discarded an unfinished attempt: {', '.join(sorted(set(removed)))}")
    return removed


def discard_uncommitted(ws: Workspace, folders: list[Path | None]) -> None:
    """Undo an attempt that failed before its commit (onboarding or removal): its folders are removed,
    their .dvc files and .gitignore lines go back to HEAD's state."""
    from components.versioning.git import restore_to_head

    for p in filter(None, folders):
        shutil.rmtree(p, ignore_errors=True)
        restore_to_head(
            ws.root, [ws.rel(f) for f in (p.with_name(p.name + ".dvc"), p.parent / ".gitignore") if f.parent.exists()]
        )


def restore_committed(ws: Workspace, log: Log) -> list[str]:
    """`dvc pull` every committed checkpoint and dataset missing from the working tree."""
    from components.versioning import restore
    from components.versioning.git import committed_names

    missing = [ws.rel(p) for p in ws.checkpoints() if not p.is_dir()]
    missing += [
        f"{ws.params.pipeline.data_dir}/{n.removesuffix('.dvc')}"
        for n in committed_names(ws.root, ws.params.pipeline.data_dir)
        if n.endswith(".dvc") and not (ws.data_dir / n.removesuffix(".dvc")).is_dir()
    ]
    if missing:
        log(f"restoring committed data missing from the working tree: {', '.join(missing)}")
        restore(ws.root, missing)
    return missing


def unregistered(ws: Workspace) -> list[Path]:
    """Committed checkpoints with no model version (killed between commit and registration), in order."""
    from components.versioning.git import read_blob
    from components.workspace.mlflow_store import registered_version

    out = []
    for ckpt in ws.checkpoints():
        dvc = read_blob(ws.root, f"HEAD:{ws.rel(ckpt)}.dvc") if ckpt.parent.is_dir() else None
        md5 = _md5(dvc) if dvc else None
        if md5 and registered_version(ws, md5) is None:
            out.append(ckpt)
    return out


def _md5(dvc_file: bytes) -> str:
    import yaml

    return yaml.safe_load(dvc_file)["outs"][0]["md5"]


def end_killed_runs(ws: Workspace, log: Log) -> list[str]:
    """End as KILLED every concept run of this workspace's model left RUNNING (its writer is dead: we
    hold the lock). Returns their run ids."""
    from components.workspace.mlflow_store import end_killed_concept_runs

    ended = end_killed_concept_runs(ws)
    if ended:
        log(f"ended MLflow runs of killed attempts as KILLED: {', '.join(ended)}")
    return ended


def recover(ws: Workspace, log: Log = print) -> list[Path]:
    """Make the working tree match HEAD, end dead runs; returns committed checkpoints to register."""
    discard_unfinished(ws, log)
    restore_committed(ws, log)
    end_killed_runs(ws, log)
    return unregistered(ws)
