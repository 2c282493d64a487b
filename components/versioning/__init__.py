"""Versioning of concept datasets and lifelong checkpoints with DVC + git (no orchestration
imports: flows call these functions). See docs/versioning.md.

    store     dataset and checkpoint folders versioned with DVC + git, atomically (one commit)
    git       git through a temporary index: commits exactly the blobs named, whatever the user staged
    restore   `dvc pull` of what was versioned, and checking it is all there
    purge     an erasure's deletion from the DVC cache and every remote
    proc      running dvc/git with the workspace env; failures as errors carrying the command's message
    env       the environment DVC and git run with (DVC's machine-wide state inside the workspace)
"""

from components.versioning.env import dvc_env
from components.versioning.git import git_head
from components.versioning.proc import VersioningError
from components.versioning.restore import restore, status_clean
from components.versioning.store import VersionRecord, ensure_dvc_repo, push_path, version_path, version_paths

__all__ = [
    "VersionRecord",
    "VersioningError",
    "dvc_env",
    "ensure_dvc_repo",
    "git_head",
    "push_path",
    "restore",
    "status_clean",
    "version_path",
    "version_paths",
]
