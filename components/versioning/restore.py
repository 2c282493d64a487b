"""Getting versioned data back and checking it is all there: `dvc pull` of datasets and checkpoints
(e.g. after losing data/ or checkpoints/), and `dvc status` against the workspace and the remote."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from components.versioning.git import git, read_blob
from components.versioning.proc import dvc_step, guarded


def restore(repo_root: str | Path, rel_paths: Sequence[str | Path], force: bool = False) -> None:
    """`dvc pull` these data paths (or their .dvc files) from the remote, e.g. after losing data/
    or checkpoints/. A .dvc file or .gitignore lost with its folder is first checked out from HEAD,
    so `rm -rf checkpoints` is recoverable in one call. Local modifications are not overwritten
    unless `force`."""
    root = Path(repo_root).resolve()
    dvc_files = [p if p.endswith(".dvc") else f"{p}.dvc" for p in (Path(r).as_posix() for r in rel_paths)]
    label = ", ".join(dvc_files)
    for dvc_file in dvc_files:
        guarded(label, "git checkout", lambda f=dvc_file: _checkout_if_missing(root, f))
    dvc_step(label, "dvc pull", ["pull", *(["--force"] if force else []), *dvc_files], root)


def _checkout_if_missing(root: Path, dvc_file: str) -> None:
    """Bring back a deleted .dvc file and its .gitignore from HEAD; never touch existing files."""
    ignore = (PurePosixPath(dvc_file).parent / ".gitignore").as_posix()
    lost = [f for f in (dvc_file, ignore) if not (root / f).exists() and read_blob(root, f"HEAD:{f}") is not None]
    if lost:
        git(["checkout", "HEAD", "--", *lost], root)


def status_clean(repo_root: str | Path, targets: Sequence[str | Path] = ()) -> bool:
    """True when the workspace matches the .dvc files (`dvc status`) and the remote holds every
    tracked object (`dvc status -c`). Limit to `targets` to ignore unrelated pipeline stages."""
    root = Path(repo_root).resolve()
    names = [Path(t).as_posix() for t in targets]
    label = ", ".join(names) or str(root)
    if _status_json(root, label, "dvc status", ["status", "--json", *names]):
        return False
    return not _status_json(root, label, "dvc status --cloud", ["status", "--cloud", "--json", *names])


def _status_json(root: Path, label: str, step: str, args: list[str]) -> dict:
    """Parsed `dvc status --json`: {} means nothing to report."""
    text = dvc_step(label, step, args, root).stdout.decode().strip()
    return json.loads(text) if text else {}
