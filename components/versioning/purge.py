"""Deleting a versioned folder's content from the DVC cache and from every DVC remote (an erasure):
only the objects nothing else at HEAD still uses.

Why not `dvc gc --workspace --cloud`: it deletes every object the current commit does not use, which
is more than the erased folder (in a repository that is also lfsd's own, earlier base models). Here the
doomed set is exact: the erased folders' `.dir` manifests and the files they list, minus every object
HEAD's `.dvc` files and `dvc.lock` still reference (two datasets may share a photo byte for byte).
Deletion goes through DVC's own object databases (`repo.cache.local`, `repo.cloud.get_remote_odb`),
so an S3 remote is handled as DVC itself would.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from components.versioning.git import git, read_blob


def _outs(text: bytes) -> list[str]:
    """The md5 of every output of a .dvc file or dvc.lock."""
    data = yaml.safe_load(text) or {}
    if "outs" in data:
        return [o["md5"] for o in data["outs"] if o.get("md5")]
    return [o["md5"] for stage in (data.get("stages") or {}).values() for o in stage.get("outs", []) if o.get("md5")]


def _expand(oid: str, odbs: list) -> set[str]:
    """`oid` and, for a directory (`.dir`), every file it lists (the manifest read from the first
    object database that has it)."""
    if not oid.endswith(".dir"):
        return {oid}
    for odb in odbs:
        if odb.exists(oid):
            with odb.fs.open(odb.oid_to_path(oid), "r") as f:
                return {oid} | {e["md5"] for e in json.load(f)}
    return {oid}


def referenced_at_head(root: Path, odbs: list) -> set[str]:
    """Every object HEAD's .dvc files and dvc.lock reference (directories expanded)."""
    names = [
        n
        for n in git(["ls-tree", "-r", "--name-only", "HEAD"], root).splitlines()
        if n.endswith(".dvc") or Path(n).name == "dvc.lock"
    ]
    oids: set[str] = set()
    for name in names:
        for md5 in _outs(read_blob(root, f"HEAD:{name}") or b""):
            oids |= _expand(md5, odbs)
    return oids


def drop_objects(repo_root: str | Path, dvc_files: list[bytes]) -> dict[str, int]:
    """Delete the objects of these `.dvc` file contents (as they were committed before the erasure)
    from the local cache and from every configured remote, except what HEAD still references.
    Idempotent. Returns {"cache" or "remote <name>": objects deleted}."""
    from dvc.repo import Repo

    root = Path(repo_root).resolve()
    with Repo(str(root)) as repo:
        places = {"cache": repo.cache.local}
        for name in repo.config.get("remote", {}):
            places[f"remote {name}"] = repo.cloud.get_remote_odb(name)
        odbs = list(places.values())
        doomed: set[str] = set()
        for text in dvc_files:
            for md5 in _outs(text):
                doomed |= _expand(md5, odbs)
        doomed -= referenced_at_head(root, odbs)
        deleted = {}
        for place, odb in places.items():
            present = [oid for oid in sorted(doomed) if odb.exists(oid)]
            for oid in present:
                odb.delete(oid)
            deleted[place] = len(present)
    return deleted
