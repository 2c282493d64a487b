"""The environment every DVC and git subprocess runs with: DVC's machine-wide state kept inside the
workspace's state folder (see components/state.py)."""

from __future__ import annotations

import os
from pathlib import Path

from components.state import state_dir


def dvc_env(repo_root: str | Path) -> dict[str, str]:
    """DVC's site cache (repo index, hash db) goes to `<state>/dvc-site-cache` instead of /var/tmp/dvc,
    and analytics stay off."""
    env = dict(os.environ)
    env["DVC_SITE_CACHE_DIR"] = str(state_dir(repo_root).resolve() / "dvc-site-cache")
    env["DVC_NO_ANALYTICS"] = "1"
    return env
