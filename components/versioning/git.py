"""Git helpers. Commits are made through a temporary index holding HEAD plus exactly the blobs we
name, so whatever the user has staged or half-edited (even other lines of the same .gitignore) is
never swept into a versioning commit, and a failed commit leaves the real index untouched."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from components.state import ensure_state_dir
from components.versioning.proc import run

IDENTITY = ["-c", "user.name=lfsd", "-c", "user.email=lfsd@localhost"]


def git(args: list[str], repo_root: str | Path, **kw) -> str:
    """Run git in the repo with the workspace env; return stripped stdout."""
    return run(["git", *args], repo_root, **kw).stdout.decode().strip()


def identity_args(repo_root: str | Path) -> list[str]:
    """A fallback identity, only when none is configured, so commits work in a bare CI container
    without overriding a real user's name on their own commits."""
    email = run(["git", "config", "user.email"], repo_root, check=False).stdout.strip()
    return [] if email else list(IDENTITY)


def git_head(repo_root: str | Path) -> str:
    """The sha of HEAD (raises CommandError in a repo without commits)."""
    return git(["rev-parse", "--verify", "HEAD"], repo_root)


def head_or_none(repo_root: str | Path) -> str | None:
    """HEAD's sha, or None before the first commit."""
    proc = run(["git", "rev-parse", "--verify", "-q", "HEAD"], repo_root, check=False)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def read_blob(repo_root: str | Path, rev_path: str) -> bytes | None:
    """Contents of `HEAD:path` / `:path` (the index), or None when that entry does not exist."""
    proc = run(["git", "cat-file", "blob", rev_path], repo_root, check=False)
    return proc.stdout if proc.returncode == 0 else None


def write_blob(repo_root: str | Path, data: bytes) -> str:
    """Store bytes as a git blob and return its sha."""
    return run(["git", "hash-object", "-w", "--stdin"], repo_root, stdin=data).stdout.decode().strip()


def _cacheinfo(entries: dict[str, str]) -> list[str]:
    return [arg for path, sha in entries.items() for arg in ("--cacheinfo", f"100644,{sha},{path}")]


def commit_blobs(
    repo_root: str | Path, blobs: dict[str, bytes], message: str, removed: Sequence[str] = ()
) -> str | None:
    """Commit `blobs` (repo-relative posix path -> bytes) and the removal of `removed` on top of HEAD
    and nothing else.

    Returns the new commit sha, or None when HEAD already holds exactly these contents. Hooks run
    (a failing pre-commit hook aborts the commit). The real index is updated afterwards only for
    these paths, to the committed blob (for files the user has not staged differently).
    """
    head = head_or_none(repo_root)
    shas = {path: write_blob(repo_root, data) for path, data in blobs.items()}
    if (
        head
        and all(_tree_sha(repo_root, head, path) == sha for path, sha in shas.items())
        and all(_tree_sha(repo_root, head, path) is None for path in removed)
    ):
        return None
    index = ensure_state_dir(repo_root).resolve() / f"git-index-{os.getpid()}"
    index.unlink(missing_ok=True)
    tmp_env = {"GIT_INDEX_FILE": str(index)}
    try:
        if head:
            run(["git", "read-tree", head], repo_root, extra_env=tmp_env)
        run(["git", "update-index", "--add", *_cacheinfo(shas)], repo_root, extra_env=tmp_env)
        if removed:
            run(["git", "update-index", "--force-remove", "--", *removed], repo_root, extra_env=tmp_env)
        run(["git", *identity_args(repo_root), "commit", "-q", "-m", message], repo_root, extra_env=tmp_env)
    finally:
        index.unlink(missing_ok=True)
    return git_head(repo_root)


def _tree_sha(repo_root: str | Path, rev: str, path: str) -> str | None:
    proc = run(["git", "rev-parse", "--verify", "-q", f"{rev}:{path}"], repo_root, check=False)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def stage_blobs(repo_root: str | Path, blobs: dict[str, bytes], removed: Sequence[str] = ()) -> None:
    """Point the real index at these blobs (after commit_blobs) so git status shows no phantom
    deletion or staged diff for the files we just committed (or removed)."""
    shas = {path: write_blob(repo_root, data) for path, data in blobs.items()}
    run(["git", "update-index", "--add", *_cacheinfo(shas)], repo_root)
    if removed:
        run(["git", "update-index", "--force-remove", "--", *removed], repo_root)


def move_head_back(repo_root: str | Path, old: str | None, new: str) -> None:
    """Undo a commit we just made (HEAD only; index and tree were never touched by it)."""
    if old:
        run(["git", "update-ref", "-m", "lfsd: rollback", "HEAD", old, new], repo_root)
    else:
        run(["git", "update-ref", "-d", "HEAD", new], repo_root)


def restore_to_head(repo_root: str | Path, rel_paths: list[str]) -> None:
    """Put each path back as HEAD has it: checked out if HEAD tracks it, removed if it does not."""
    for rel in rel_paths:
        if read_blob(repo_root, f"HEAD:{rel}") is not None:
            git(["checkout", "HEAD", "--", rel], repo_root)
        else:
            (Path(repo_root) / rel).unlink(missing_ok=True)


def init_repo(repo_root: str | Path, branch: str = "main") -> None:
    """`git init` with a local fallback identity (a workspace must be able to commit on a bare machine)."""
    git(["init", "-q", "-b", branch], repo_root)
    git(["config", "user.email", "lfsd@localhost"], repo_root)
    git(["config", "user.name", "lfsd"], repo_root)


def commit_all(repo_root: str | Path, message: str) -> str:
    """Stage everything git does not ignore and commit it; returns the new HEAD."""
    git(["add", "-A"], repo_root)
    git([*identity_args(repo_root), "commit", "-q", "-m", message], repo_root)
    return git_head(repo_root)


def committed_names(repo_root: str | Path, folder: str) -> list[str]:
    """Names of the entries git has committed directly under `folder` at HEAD ([] before any commit)."""
    if head_or_none(repo_root) is None:
        return []
    out = git(["ls-tree", "--name-only", "HEAD", f"{folder.rstrip('/')}/"], repo_root)
    return [Path(line).name for line in out.splitlines() if line]


def uncommitted(repo_root: str | Path, folder: str) -> list[str]:
    """Repo-relative paths under `folder` that differ from HEAD or are untracked (ignored ones excluded)."""
    out = git(["status", "--porcelain", "--untracked-files=all", "--", folder], repo_root)
    return [line[3:] for line in out.splitlines() if line]


def has_commit(repo_root: str | Path, sha: str) -> bool:
    """Whether `sha` names a commit of this repository."""
    return run(["git", "cat-file", "-e", f"{sha}^{{commit}}"], repo_root, check=False).returncode == 0
