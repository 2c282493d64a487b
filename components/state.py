"""Where a workspace's runtime state lives: `<workspace>/.lfsd` (or $LFSD_STATE_DIR), never $HOME.

MLflow's sqlite store and artifacts, the local DVC remote and DVC's site cache, Prefect's home, Ray's
temp folder and results and figures all go here (the writer lock always in `<workspace>/.lfsd`), so a
run is self-contained and deleting the workspace leaves nothing behind. Git never sees it (a `*` .gitignore inside).
"""

from __future__ import annotations

import os
from pathlib import Path

STATE_ENV = "LFSD_STATE_DIR"
WORKSPACE_ENV = "LFSD_WORKSPACE"
MARKERS = (".git", "params.yaml")  # what makes a folder a workspace


def find_workspace(start: Path | None = None) -> Path | None:
    """The nearest folder from `start` (default: the current directory) upward that is a workspace
    (cheap: no model library is imported, so a Prefect run process can call it first thing)."""
    here = Path(start or Path.cwd()).resolve()
    return next((d for d in (here, *here.parents) if all((d / m).exists() for m in MARKERS)), None)


def state_dir(repo_root: str | Path) -> Path:
    """`<repo>/.lfsd`, or $LFSD_STATE_DIR (a relative value is taken relative to the repo)."""
    root = Path(repo_root)
    override = os.environ.get(STATE_ENV)
    if not override:
        return root / ".lfsd"
    path = Path(override).expanduser()
    return path if path.is_absolute() else root / path


def ensure_state_dir(repo_root: str | Path) -> Path:
    """Create the state dir with a `*` .gitignore inside, so git never sees it even in a repo whose
    own .gitignore does not list it (as pytest does with .pytest_cache)."""
    return ensure_ignored_dir(state_dir(repo_root))


def lock_dir(repo_root: str | Path) -> Path:
    """`<repo>/.lfsd`, whatever $LFSD_STATE_DIR says: the writer lock must be ONE file per workspace, so
    two commands that see different state folders still exclude each other."""
    return ensure_ignored_dir(Path(repo_root).resolve() / ".lfsd")


def ensure_ignored_dir(path: Path) -> Path:
    """`path`, created if needed, with a `*` .gitignore inside."""
    path.mkdir(parents=True, exist_ok=True)
    ignore = path / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# lfsd runtime state: never committed\n*\n")
    return path
