"""How `lfsd` commands that change or inspect a workspace run: which workspace, the writer lock taken
before Prefect starts, and failures as one clear line (with the full log, tracebacks included, in the
workspace's state folder, or outside a workspace in the temp folder) instead of a traceback."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import typer

LOG_FILE = "logs/lfsd.log"  # under the workspace's state folder
_LOG: dict[str, Path | None] = {"file": None}  # the log this command writes, once it has one
QUIET_LIBRARIES = {  # progress bars and advice the model libraries print on every load, not about this run
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "DIFFUSERS_VERBOSITY": "error",
    "MLFLOW_CONFIGURE_LOGGING": "false",  # MLflow's INFO lines ("Creating initial MLflow database tables")
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # "Downloading artifacts" bars, one per artifact
}
QUIET_LOGGERS = (  # warnings that say nothing about this run; the full log does not need them either
    "ray._private.authentication.authentication_token_setup",  # "Token authentication is enabled ..."
)


def quiet_libraries() -> None:
    """Before any library is imported (the settings are read at import; Ray workers inherit them)."""
    import logging

    for key, value in QUIET_LIBRARIES.items():
        os.environ.setdefault(key, value)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def log_path() -> Path:
    """Where this command's full log goes: `<state>/logs/lfsd.log` of its workspace, else
    `<tmp>/lfsd-<uid>/lfsd.log` (a failure outside any workspace still leaves its traceback somewhere)."""
    import tempfile

    from components.state import WORKSPACE_ENV, state_dir

    root = os.environ.get(WORKSPACE_ENV)
    if root:
        return state_dir(root).resolve() / LOG_FILE
    return Path(tempfile.gettempdir()) / f"lfsd-{os.getuid()}" / "lfsd.log"


def quiet_terminal() -> Path | None:
    """Prefect's run log on the terminal without tracebacks; all of it in `<state>/logs/lfsd.log`."""
    from components.state import WORKSPACE_ENV

    if not os.environ.get(WORKSPACE_ENV):
        return None
    from flows.env import quiet_tracebacks, temporary_server_off_the_terminal

    temporary_server_off_the_terminal()
    _LOG["file"] = quiet_tracebacks(log_path())
    return _LOG["file"]


def _write_traceback(e: BaseException, what: str) -> Path:
    """The traceback of `e` appended to the full log; returns the log's path."""
    import time
    import traceback

    path = _LOG["file"] or log_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {what}\n{''.join(traceback.format_exception(e))}\n")
    return path


def report_interrupt(e: BaseException) -> int:
    """Ctrl-C: one line saying what state it left, the log's path; exit code 130 (128 + SIGINT)."""
    path = _write_traceback(e, "interrupted (Ctrl-C)")
    typer.secho(
        "interrupted: stopped at Ctrl-C; an attempt not yet committed was discarded (a rerun resumes its "
        "training), one already committed is finished by running the same command again; "
        "production was not moved by this run",
        err=True,
        fg=typer.colors.RED,
    )
    typer.echo(f"  full log: {path}", err=True)
    return 130


def report_failure(e: BaseException) -> int:
    """Any other failure: `error: ...` in one line (the one-line cause), the log's path; exit code 1."""
    path = _write_traceback(e, "failed")
    from components.redaction import redact_text

    text = (redact_text(str(e)).strip().splitlines() or [""])[0][:300]  # a URI in it may hold a password
    typer.secho(f"error: {type(e).__name__}: {text}" if text else f"error: {type(e).__name__}", err=True, fg="red")
    typer.echo(f"  full log: {path} (or run `lfsd --debug ...` for the traceback)", err=True)
    return 1


WORKSPACE_HELP = "Workspace (default: $LFSD_WORKSPACE, else the workspace the current directory is in)."
SET_HELP = (
    "Where this command runs, over params.yaml: runtime.device=cuda:1, runtime.precision=bf16, runtime.threads=4."
)
NO_WAIT_HELP = "If another command is changing the workspace, exit at once (code 75) instead of waiting."


def _fail(message: str, code: int = 1) -> None:
    """`message` (its first line `error: ...`, `refused: ...`, ...) and, once this command writes a log,
    its path; exit `code`."""
    typer.secho(message, err=True, fg=typer.colors.RED)
    if _LOG["file"] is not None and "full log: " not in message:
        typer.echo(f"  full log: {_LOG['file']}", err=True)
    raise typer.Exit(code)


def _workspace(workspace: Path | None, overrides: list[str] | tuple[str, ...] = ()) -> str:
    """The workspace this command works on, found before Prefect is imported (its home lives there)."""
    import os

    from components.state import WORKSPACE_ENV
    from components.workspace.layout import WorkspaceNotFound, workspace_root

    try:
        root = str(workspace_root(workspace))
    except WorkspaceNotFound as e:
        _fail(f"error: {e}")
    os.environ[WORKSPACE_ENV] = root
    _check_placement(root, overrides)
    return root


def _check_placement(root: str, overrides: list[str] | tuple[str, ...] = ()) -> None:
    """`runtime.device` / `runtime.precision` this machine cannot honour: one line, before anything starts."""
    from components.device import DeviceError, check_local_ray_gpus, placement
    from components.workspace.layout import load_workspace

    try:
        params = load_workspace(root, overrides).params
        placement(params.runtime)
        check_local_ray_gpus(params.ray)
    except (DeviceError, ValueError, TypeError) as e:  # a bad --set value too
        _fail(f"error: {e}", 2)


@contextmanager
def _writer(root: str, command: str, no_wait: bool):
    """Hold the workspace's writer lock for the whole command, taken before Prefect starts (two
    processes starting Prefect's temporary API on one workspace's database would race). The chain
    takes the same lock again inside (re-entrant); a scheduled run, with no CLI around it, relies on that."""
    from components.workspace.lock import BUSY_EXIT_CODE, WorkspaceBusy, writer_lock

    try:
        with writer_lock(Path(root), command, wait=not no_wait, log=lambda m: typer.echo(m, err=True)):
            yield
    except WorkspaceBusy as e:
        _fail(f"busy: {e}", BUSY_EXIT_CODE)


def _placement(runtime):
    """runtime.device / runtime.precision checked against this machine: a one-line error if it cannot."""
    from components.device import DeviceError, placement

    try:
        return placement(runtime)
    except DeviceError as e:
        _fail(f"error: {e}")


def out_of_memory(err: BaseException) -> str | None:
    """The one-line advice when training ran the accelerator out of memory (the attempt is discarded)."""
    from components.device import out_of_memory_message, placement
    from components.workspace.layout import load_workspace

    ws = load_workspace()
    try:
        where = placement(ws.params.runtime)
    except Exception:  # the advice must not fail where the error is being reported
        return None
    return out_of_memory_message(err, where, ws.params.training.batch_size)


def _causes(e: BaseException):
    """`e` and what it was raised from or during, innermost last."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def _run_flow(fn, *args, **kwargs):
    """Run a flow (or a step of one); a rejected input, a busy workspace or a refused registry operation
    is a clear message and exit code, not a traceback."""
    from components.cli.errors import service_failure
    from components.device import DeviceError
    from components.erasure.record import ErasureRefused
    from components.lifelong import BaseMismatch
    from components.registry import RegistryError
    from components.validation import ValidationError
    from components.versioning import VersioningError
    from components.workspace.lock import BUSY_EXIT_CODE, WorkspaceBusy

    log_file = quiet_terminal()
    try:
        return fn(*args, **kwargs)
    except ValidationError as e:
        _fail(str(e), 2)
    except BaseMismatch as e:
        _fail(f"error: {e}", 2)
    except ErasureRefused as e:
        _fail(f"refused: {e}", 2)
    except WorkspaceBusy as e:
        _fail(f"busy: {e}", BUSY_EXIT_CODE)
    except DeviceError as e:
        _fail(f"error: {e}\n  full log: {log_file}", 2)
    except Exception as e:
        if any(isinstance(err, KeyboardInterrupt) for err in _causes(e)):  # Ctrl-C, then a failure on the way out
            raise KeyboardInterrupt from e
        oom = out_of_memory(e)
        if oom is not None:
            _fail(f"error: {oom}\n  full log: {log_file}", 1)
        message = service_failure(e)
        if message is not None:
            _fail(f"{message}\n  full log: {log_file}", 1)
        if isinstance(e, (RegistryError, VersioningError, FileNotFoundError)):
            _fail(f"error: {e}\n  full log: {log_file}", 1)
        raise
