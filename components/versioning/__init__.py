"""Versioning of concept datasets and lifelong checkpoints with DVC + git (no orchestration
imports: flows call these functions). See docs/versioning.md."""

from components.versioning.env import dvc_env
from components.versioning.git import git_head
from components.versioning.proc import VersioningError
from components.versioning.restore import restore, status_clean
from components.versioning.store import VersionRecord, ensure_dvc_repo, push_path, version_path, version_paths

__all__ = [
    "VersionRecord", "VersioningError", "dvc_env", "ensure_dvc_repo", "git_head", "restore",
    "status_clean", "version_path", "version_paths", "push_path",
]
