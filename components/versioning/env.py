"""Where versioning state lives. Everything DVC and git would otherwise scatter over the machine
(/var/tmp/dvc, a remote somewhere in $HOME) stays inside the workspace, so a run is self-contained
and deleting the workspace leaves nothing behind."""

from __future__ import annotations

import os
from pathlib import Path

STATE_ENV = "LFSD_STATE_DIR"


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
    path = state_dir(repo_root)
    path.mkdir(parents=True, exist_ok=True)
    ignore = path / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# lfsd runtime state: never committed\n*\n")
    return path


def dvc_env(repo_root: str | Path) -> dict[str, str]:
    """The environment for every DVC and git subprocess: DVC's site cache (repo index, hash db)
    goes to `<state>/dvc-site-cache` instead of /var/tmp/dvc, and analytics stay off."""
    env = dict(os.environ)
    env["DVC_SITE_CACHE_DIR"] = str(state_dir(repo_root).resolve() / "dvc-site-cache")
    env["DVC_NO_ANALYTICS"] = "1"
    return env
