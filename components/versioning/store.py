"""Version concept datasets and lifelong checkpoints with DVC + git, atomically.

`version_path` = dvc add -> dvc push -> one git commit of the .dvc file (and DVC's .gitignore
entry). Any failure restores the .dvc file, the .gitignore and HEAD exactly as they were and raises
VersioningError naming the path and the failed step. Objects already copied into the DVC cache or
the remote are left there: both are content-addressed, so stray objects change no visible state.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

from components.state import ensure_state_dir, state_dir
from components.versioning.git import commit_blobs, head_or_none, move_head_back, read_blob, stage_blobs
from components.versioning.proc import VersioningError, dvc_step, guarded, run_dvc
from components.versioning.restore import remove_whole

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VersionRecord:
    """What one `version_path` call pinned: enough to find the data again from git history."""

    path: str  # repo-relative posix path of the data
    md5: str  # DVC hash of the output (`<md5>.dir` for a directory)
    nfiles: int
    size: int  # bytes
    dvc_file: str  # repo-relative posix path of the .dvc file
    commit: str  # the commit holding this version (HEAD when nothing changed)
    changed: bool  # False when the data was already committed as-is (no new commit made)


def default_remote_url(repo_root: str | Path) -> Path:
    """A local directory remote inside the state dir: works offline, needs no credentials."""
    return state_dir(repo_root) / "dvc-remote"


def ensure_dvc_repo(repo_root: str | Path, remote_url: str | None = None, remote_name: str = "local") -> str:
    """Make `repo_root` a DVC repo with a default remote; safe to call any number of times.

    `dvc init` runs only when `.dvc/` is missing (it stages its own files in git; committing them is
    left to the caller). A remote is added only when no default remote is configured at any level,
    so an existing setup is never overridden. The default local remote goes into `.dvc/config.local`
    (git-ignored) as a path relative to `.dvc/`: the committed `.dvc/config` never hardcodes this
    machine's paths, and the workspace stays relocatable. An explicit `remote_url` (a real, shared
    remote) goes into the committed `.dvc/config`. Returns the default remote's name.
    """
    root = Path(repo_root).resolve()
    ensure_state_dir(root)
    if not (root / ".dvc").is_dir():
        dvc_step(str(root), "dvc init", ["init"], root)
    key = (
        root,
        *(
            f.stat().st_mtime_ns if f.is_file() else 0
            for f in (root / ".dvc" / "config", root / ".dvc" / "config.local")
        ),
    )
    if key not in _DEFAULT_REMOTE:  # one `dvc config` per process while neither config file changes
        current = run_dvc(["config", "core.remote"], root, check=False)
        _DEFAULT_REMOTE[key] = current.stdout.decode().strip() if current.returncode == 0 else ""
    if _DEFAULT_REMOTE[key]:
        return _DEFAULT_REMOTE[key]
    url, local = _remote_url_arg(root, remote_url)
    level = ["--local"] if local else []
    dvc_step(str(root), "dvc remote add", ["remote", "add", *level, "-d", remote_name, url], root)
    # DVC re-hashes what it downloads from a remote only when asked; the cache is checked by `restore`
    dvc_step(str(root), "dvc remote modify", ["remote", "modify", *level, remote_name, "verify", "true"], root)
    return remote_name


_DEFAULT_REMOTE: dict[tuple, str] = {}  # (repo, its config files' mtimes) -> the default remote ("" = none)


def _remote_url_arg(root: Path, remote_url: str | None) -> tuple[str, bool]:
    """(url as passed to `dvc remote add`, whether it belongs in config.local)."""
    default = default_remote_url(root).resolve()
    if remote_url is not None and Path(remote_url).expanduser().resolve() != default:
        return remote_url, False
    try:
        return default.relative_to(root).as_posix(), True  # relative to cwd=root; DVC stores it relative
    except ValueError:
        return str(default), True


# ---------------------------------------------------------------- versioning


def version_path(repo_root: str | Path, rel_path: str | Path, message: str) -> VersionRecord:
    """Track `rel_path` with DVC, push it, and commit its .dvc file; all-or-nothing.

    Unchanged data (already committed with the same hash) makes no new commit. Only the .dvc file and
    DVC's own `/name` line in the neighbouring .gitignore are committed, on top of HEAD: other staged
    or unstaged changes, including other lines of that .gitignore, stay where they are.
    """
    return version_paths(repo_root, [rel_path], message)[0]


def version_paths(
    repo_root: str | Path,
    rel_paths: Sequence[str | Path],
    message: str,
    git_files: dict[str, bytes] | None = None,
    drop: Sequence[str] = (),
) -> list[VersionRecord]:
    """`version_path` for several paths with ONE git commit (an onboarded concept = its dataset and
    its checkpoint in one commit); all-or-nothing across every path. `git_files` (repo-relative path ->
    contents: small files git itself tracks, e.g. the metrics DVC shows) are written and go into the
    same commit. `drop`: tracked data paths taken out in that same commit (their .dvc file and
    .gitignore entry; the data itself is deleted once the commit exists: an erasure)."""
    root = Path(repo_root).resolve()
    rels = [_normalize(root, p) for p in rel_paths]
    files = [(rel, f"{rel}.dvc", (PurePosixPath(rel).parent / ".gitignore").as_posix()) for rel in rels]
    extra = dict(git_files or {})
    dropped = [PurePosixPath(p).as_posix() for p in drop]
    for rel in dropped:  # the .gitignore without DVC's entry for the dropped path, as HEAD has it otherwise
        ignore = (PurePosixPath(rel).parent / ".gitignore").as_posix()
        text = extra.get(ignore) or read_blob(root, f"HEAD:{ignore}") or b""
        extra[ignore] = "".join(
            f"{line}\n" for line in text.decode().splitlines() if line != f"/{PurePosixPath(rel).name}"
        ).encode()
    before = _snapshot(
        root,
        list(dict.fromkeys([*(p for _, d, i in files for p in (d, i)), *extra, *(f"{rel}.dvc" for rel in dropped)])),
    )
    try:
        for rel, data in extra.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        if rels:  # one dvc process for every path
            dvc_step(", ".join(rels), "dvc add", ["add", *rels], root)
        dvc_step(", ".join(rels), "dvc push", ["push", *(d for _, d, _ in files)], root)
        commit, changed = _commit(root, files, message, extra, [f"{rel}.dvc" for rel in dropped])
    except BaseException:  # a failed step, but also Ctrl-C or an OSError: the tree goes back as it was
        _restore_snapshot(root, before)
        raise
    for rel in dropped:
        (root / f"{rel}.dvc").unlink(missing_ok=True)
        remove_whole(root / rel)  # a reader sees the whole folder or none
    records = [_record(root, rel, dvc_file, commit, changed) for rel, dvc_file, _ in files]
    for r in records:
        log.info("versioned %s -> %s (%s)", r.path, r.md5, "new commit" if changed else "unchanged")
    return records


def push_path(repo_root: str | Path, rel_path: str | Path) -> str:
    """`dvc add` + `dvc push` without a git commit (the commit comes later, with the checkpoint).
    Returns the DVC md5. On failure the .dvc file and .gitignore are put back as they were."""
    root = Path(repo_root).resolve()
    rel = _normalize(root, rel_path)
    dvc_file, ignore_file = f"{rel}.dvc", (PurePosixPath(rel).parent / ".gitignore").as_posix()
    before = _snapshot(root, [dvc_file, ignore_file])
    try:
        dvc_step(rel, "dvc add", ["add", rel], root)
        dvc_step(rel, "dvc push", ["push", dvc_file], root)
    except BaseException:
        _restore_snapshot(root, before)
        raise
    return yaml.safe_load((root / dvc_file).read_text())["outs"][0]["md5"]


def _normalize(root: Path, rel_path: str | Path) -> str:
    """Repo-relative posix path of an existing file/dir inside the repo; bad input fails before any
    command runs."""
    full = Path(os.path.abspath(root / rel_path))
    try:
        rel = full.relative_to(root)
    except ValueError:
        raise VersioningError(str(rel_path), "validate", "path is outside the repository") from None
    if rel == Path(".") or rel.parts[0] in {".git", ".dvc"}:
        raise VersioningError(str(rel_path), "validate", "not a data path inside the repository")
    if not full.exists():
        raise VersioningError(str(rel_path), "validate", "path does not exist")
    return rel.as_posix()


def _commit(
    root: Path,
    files: list[tuple[str, str, str]],
    message: str,
    extra: dict[str, bytes] | None = None,
    removed: Sequence[str] = (),
) -> tuple[str, bool]:
    """Commit the .dvc files (+ gitignore entries, + `extra` files); then point the real index at what
    was committed."""
    old_head = head_or_none(root)
    commit_side: dict[str, bytes] = dict(extra or {})
    index_side: dict[str, bytes] = dict(extra or {})
    for rel, dvc_file, ignore_file in files:
        c, i = _blobs(root, rel, dvc_file, ignore_file, commit_side, index_side)
        commit_side.update(c)
        index_side.update(i)
    label = ", ".join(rel for rel, _, _ in files)
    new = guarded(label, "git commit", lambda: commit_blobs(root, commit_side, message, removed))
    if new is None:
        return old_head or "", False
    try:
        guarded(label, "git index", lambda: stage_blobs(root, index_side, removed))
    except BaseException:
        move_head_back(root, old_head, new)
        raise
    return new, True


def _blobs(
    root: Path,
    rel: str,
    dvc_file: str,
    ignore_file: str,
    commit_so_far: dict[str, bytes],
    index_so_far: dict[str, bytes],
) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """(contents to commit, contents for the real index). The .gitignore gets DVC's entry added to
    HEAD's version for the commit, and to the staged version for the index, nothing else (entries of
    earlier paths of the same commit that share the .gitignore are kept)."""
    data = (root / dvc_file).read_bytes()
    commit_side, index_side = {dvc_file: data}, {dvc_file: data}
    entry = f"/{PurePosixPath(rel).name}"
    work = root / ignore_file
    if work.exists() and entry in work.read_text().splitlines():
        head_text = commit_so_far.get(ignore_file) or read_blob(root, f"HEAD:{ignore_file}") or b""
        commit_side[ignore_file] = _with_entry(head_text, entry)
        staged = index_so_far.get(ignore_file) or read_blob(root, f":{ignore_file}")
        index_side[ignore_file] = commit_side[ignore_file] if staged is None else _with_entry(staged, entry)
    return commit_side, index_side


def _with_entry(text: bytes, entry: str) -> bytes:
    if entry in text.decode().splitlines():
        return text
    sep = b"" if not text or text.endswith(b"\n") else b"\n"
    return text + sep + entry.encode() + b"\n"


def _snapshot(root: Path, paths: Sequence[str]) -> dict[str, bytes | None]:
    return {p: (root / p).read_bytes() if (root / p).is_file() else None for p in paths}


def _restore_snapshot(root: Path, before: dict[str, bytes | None]) -> None:
    """Put the .dvc file and .gitignore back byte for byte (or remove what did not exist)."""
    for rel, data in before.items():
        path = root / rel
        if data is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(data)


def _record(root: Path, rel: str, dvc_file: str, commit: str, changed: bool) -> VersionRecord:
    out = yaml.safe_load((root / dvc_file).read_text())["outs"][0]
    return VersionRecord(
        path=rel,
        md5=out["md5"],
        nfiles=int(out.get("nfiles", 1)),
        size=int(out.get("size", 0)),
        dvc_file=dvc_file,
        commit=commit,
        changed=changed,
    )


def committed_record(repo_root: str | Path, rel_path: str) -> VersionRecord:
    """What HEAD holds for `rel_path`: its .dvc file there and the commit that last changed it."""
    from components.versioning.git import git, read_blob

    root = Path(repo_root).resolve()
    dvc_file = f"{rel_path}.dvc"
    data = read_blob(root, f"HEAD:{dvc_file}")
    if data is None:
        raise VersioningError(rel_path, "read HEAD", f"{dvc_file} is not committed")
    out = yaml.safe_load(data)["outs"][0]
    commit = git(["log", "-1", "--format=%H", "--", dvc_file], root)
    return VersionRecord(
        path=rel_path,
        md5=out["md5"],
        nfiles=int(out.get("nfiles", 1)),
        size=int(out.get("size", 0)),
        dvc_file=dvc_file,
        commit=commit,
        changed=False,
    )
