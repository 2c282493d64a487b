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


class _WithoutTraceback:
    """A formatter wrapper: the record as the inner formatter writes it, minus the traceback (which the
    log file keeps)."""

    def __init__(self, inner, where: str):
        self.inner, self.where = inner, where

    def format(self, record):
        saved = record.exc_info, record.exc_text
        record.exc_info = record.exc_text = None
        try:
            text = self.inner.format(record)
        finally:
            record.exc_info, record.exc_text = saved
        return text + (f" (traceback in {self.where})" if saved[0] else "")

    def __getattr__(self, name):  # anything else a handler asks of its formatter
        return getattr(self.inner, name)


def quiet_tracebacks(log_file: Path) -> Path:
    """The terminal shows Prefect's run log without tracebacks, so a failed command ends with lfsd's one
    clear line; `log_file` gets the whole log, tracebacks included. Call after `import prefect`."""
    import logging

    log_file.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    for handler in root.handlers:
        on_terminal = isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
        if on_terminal and not isinstance(handler.formatter, _WithoutTraceback):
            handler.setFormatter(_WithoutTraceback(handler.formatter or logging.Formatter(), str(log_file)))
    if not any(isinstance(h, logging.FileHandler) and h.baseFilename == str(log_file) for h in root.handlers):
        full = logging.FileHandler(log_file)
        full.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(full)
    return log_file
