"""Prefect settings that must be in the environment before `import prefect`."""

from __future__ import annotations

import os
from pathlib import Path


def configure_prefect() -> None:
    """PREFECT_HOME inside the workspace's state folder (the workspace named, or the one we stand in)."""
    from components.state import WORKSPACE_ENV, ensure_state_dir, find_workspace

    state = ensure_state_dir(os.environ.get(WORKSPACE_ENV) or find_workspace() or Path.cwd()).resolve()
    defaults = {
        "PREFECT_HOME": str(state / "prefect"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LOG_PRINTS": "true",
        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
        "GX_ANALYTICS_ENABLED": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
