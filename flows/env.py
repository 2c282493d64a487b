"""Prefect settings that must be in the environment before `import prefect`, and what of a run's log reaches
the terminal: lfsd's own lines (`run_log`) and lfsd's warnings; Prefect's bookkeeping, library warnings and
every traceback go to the full log only."""

from __future__ import annotations

import os
from pathlib import Path

LFSD_LINE = "lfsd_line"  # a log record's attribute: one of lfsd's own lines, shown on the terminal
OWN_LOGGERS = ("components", "flows", "benchmarks")


def run_logger():
    """Prefect's run logger (the UI shows its lines), each line marked as lfsd's own so the terminal shows it."""
    from prefect import get_run_logger
    from prefect.logging.loggers import PrefectLogAdapter

    logger = get_run_logger()
    return PrefectLogAdapter(logger.logger, {**(logger.extra or {}), LFSD_LINE: True})


def run_log():
    """The `log` a chain gets inside a flow: `run_logger().info`."""
    return run_logger().info


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
        "DO_NOT_TRACK": "1",  # Prefect's client telemetry and its notice on every terminal (lfsd runs offline)
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
        if getattr(record, LFSD_LINE, False):  # lfsd's own line: the time and the message
            return f"{self.inner.formatTime(record, '%H:%M:%S')} {record.getMessage()}"
        saved = record.exc_info, record.exc_text
        record.exc_info = record.exc_text = None
        try:
            text = self.inner.format(record)
        finally:
            record.exc_info, record.exc_text = saved
        return text + (f" (traceback in {self.where})" if saved[0] else "")

    def __getattr__(self, name):  # anything else a handler asks of its formatter
        return getattr(self.inner, name)


class _OwnProcessGroup:
    """`subprocess` as Prefect's server module sees it, but `Popen` starts a process group of its own."""

    def __getattr__(self, name):
        import subprocess

        return getattr(subprocess, name)

    @staticmethod
    def Popen(*args, **kwargs):  # subprocess's name
        import subprocess

        return subprocess.Popen(*args, **{"process_group": 0, **kwargs})


def temporary_server_off_the_terminal() -> None:
    """Prefect's temporary API server (no PREFECT_API_URL) in a process group of its own: Ctrl-C on the
    terminal goes to the foreground group, and a server that died of it would leave lfsd's own abort waiting a
    minute on a dead API before it could say `interrupted`. Prefect stops the server when lfsd exits."""
    from prefect.settings import get_current_settings

    if get_current_settings().api.url:
        return
    from prefect.server.api import server

    server.subprocess = _OwnProcessGroup()


def shown_on_terminal(record) -> bool:
    """lfsd's own lines, and warnings or errors logged by lfsd's own modules; the rest is for the log file."""
    if getattr(record, LFSD_LINE, False):
        return True
    import logging

    return record.levelno >= logging.WARNING and record.name.split(".")[0] in OWN_LOGGERS


def quiet_tracebacks(log_file: Path) -> Path:
    """The terminal shows lfsd's own lines of the run log (`shown_on_terminal`) without tracebacks, so a failed
    command ends with lfsd's one clear line; `log_file` gets the whole log (Prefect's and the libraries' lines,
    tracebacks included). Call after `import prefect`."""
    import logging

    from mlflow.utils.logging_utils import MLFLOW_LOGGING_STREAM

    # MLflow's direct prints ("Successfully registered model ...") become log records (the full log keeps them)
    mlflow_log = logging.getLogger("mlflow.eprint")
    mlflow_log.setLevel(logging.INFO)
    MLFLOW_LOGGING_STREAM.write = lambda text: text.strip() and mlflow_log.info(text.strip())
    log_file.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    with_handlers = [root] + [lg for lg in logging.root.manager.loggerDict.values() if getattr(lg, "handlers", None)]
    for handler in [h for lg in with_handlers for h in lg.handlers]:
        on_terminal = isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
        if on_terminal and not isinstance(handler.formatter, _WithoutTraceback):
            handler.setFormatter(_WithoutTraceback(handler.formatter or logging.Formatter(), str(log_file)))
            handler.addFilter(shown_on_terminal)
    if not any(isinstance(h, logging.FileHandler) and h.baseFilename == str(log_file) for h in root.handlers):
        full = logging.FileHandler(log_file)
        full.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(full)
    return log_file
