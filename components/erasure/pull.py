"""`lfsd pull`: the data of the checked-out commit back from the DVC remote (after a clone, or after
`git checkout` of an older commit), with erased data named as such.

Git history keeps the `.dvc` pointers of an erased concept; the objects they name are gone from every
cache and remote. Plain `dvc pull` of such a commit fails with DVC's "missing cache" error; this
command pulls everything else and then says which dataset or checkpoint was erased, when, by whom
and why, from the erasure records of every branch and tag (an old commit predates its own record).
"""

from __future__ import annotations

import json

from components.erasure.record import ErasureRecord
from components.workspace.layout import RECORDS_DIR, Workspace


class ErasedData(RuntimeError):
    """The checked-out commit names data an erasure removed."""


def erasure_records_everywhere(ws: Workspace) -> list[ErasureRecord]:
    """The erasure records committed at the tip of any branch or tag (deduplicated)."""
    from components.versioning.git import git, read_blob

    tips = git(["for-each-ref", "--format=%(objectname)", "refs/heads", "refs/tags"], ws.root).split()
    seen: dict[str, ErasureRecord] = {}
    for tip in tips:
        for name in git(["ls-tree", "--name-only", tip, f"{RECORDS_DIR}/"], ws.root).splitlines():
            blob = read_blob(ws.root, f"{tip}:{name}")
            if blob:
                seen[name] = ErasureRecord(**json.loads(blob))
    return list(seen.values())


def pull(ws: Workspace, log=print, wait: bool = True) -> list[str]:
    """Pull every dataset and checkpoint HEAD names, under the writer lock (it changes the working tree a
    writer reads); returns them. ErasedData after pulling the rest, naming each erased one with its record;
    CorruptFile when a restored file differs from the commit's hash (that copy is removed)."""
    from components.workspace.lock import writer_lock

    with writer_lock(ws.root, "pull", wait=wait, log=log):
        return _pull(ws)


def _pull(ws: Workspace) -> list[str]:
    from components.versioning import restore
    from components.versioning.git import committed_names

    folders = (
        "models",
        ws.params.pipeline.data_dir,
        ws.params.pipeline.checkpoint_dir,
    )  # models/: a DVC-tracked SD base
    targets = [
        f"{folder}/{n.removesuffix('.dvc')}"
        for folder in folders
        for n in committed_names(ws.root, folder)
        if n.endswith(".dvc")
    ]
    erased = {path: r for r in erasure_records_everywhere(ws) for path in (r.dataset, r.checkpoint)}
    wanted = [t for t in targets if t not in erased]
    if wanted:
        restore(ws.root, wanted)
    gone = [t for t in targets if t in erased]
    if gone:
        raise ErasedData(
            "; ".join(
                f"{t} was erased on {erased[t].erased_at} by {erased[t].requested_by} ({erased[t].reason}; record "
                f"{erased[t].git_path()}): it cannot be pulled"
                for t in gone
            )
            + f". Everything else this commit names was pulled ({len(wanted)} paths)."
        )
    return wanted
