"""`lfsd` commands around a workspace rather than its pipeline: `init` (a new one, and how to call this lfsd
from anywhere) and `ui` (the MLflow UI, stopped with everything it started)."""

from __future__ import annotations

from pathlib import Path

import typer

from components.cli.app import app
from components.cli.running import WORKSPACE_HELP, _fail, _workspace


@app.command()
def init(
    directory: Path = typer.Argument(..., help="Folder to create the workspace in (must not exist yet)."),
    base: Path = typer.Option(
        None,
        help="Base model folder (an lfsd bundle or a local Stable Diffusion folder); "
        "default: lfsd's embedded world base.",
    ),
) -> None:
    """Create a workspace: a git + DVC repository with the base and evaluator models and a params.yaml
    holding only this workspace's own values."""
    from components.model.base_folder import BaseFolderError
    from components.workspace.layout import init_workspace

    if directory.exists():
        _fail(f"error: {directory}: already exists; a workspace is created in a new folder")
    try:
        root = init_workspace(directory, base_dir=base)
    except BaseFolderError as e:
        _fail(f"error: not a usable base: {e}", 2)
    where = root.resolve()
    typer.echo(f"workspace {where} created; onboard with:\n  cd {where} && {_lfsd_command()} onboard CONCEPT_FOLDER")


def _lfsd_command() -> str:
    """How to call this very lfsd from anywhere: its executable's absolute path (a new workspace has no
    .venv of its own, and `lfsd` may not be on PATH)."""
    import shlex
    import shutil
    import sys

    beside = Path(sys.executable).with_name("lfsd")
    if beside.is_file():
        return shlex.quote(str(beside))
    on_path = shutil.which("lfsd")
    return shlex.quote(on_path) if on_path else f"{shlex.quote(sys.executable)} -m components.cli"


@app.command()
def ui(
    port: int = typer.Option(5000, help="Port on 127.0.0.1."),
    workspace: Path = typer.Option(None, help=WORKSPACE_HELP),
) -> None:
    """The MLflow UI over this workspace's runs and registry, on 127.0.0.1."""
    import os
    import sys

    from components.redaction import redact
    from components.registry import artifact_root_default, tracking_uri_default
    from components.workspace.layout import load_workspace

    ws = load_workspace(_workspace(workspace))
    uri = tracking_uri_default(ws.root)
    typer.echo(f"MLflow UI on http://127.0.0.1:{port} (store {redact(uri)}); Ctrl-C stops it")
    # The store's URI goes in MLflow's own variable, not on the command line (which every local user can read).
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", MLFLOW_BACKEND_STORE_URI=uri)
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    cmd += ["--default-artifact-root", artifact_root_default(ws.root).as_uri()]
    raise typer.Exit(_serve_until_stopped(cmd, env))


def _serve_until_stopped(cmd: list[str], env: dict) -> int:
    """Run the server in a process group of its own and stop that whole group (gunicorn/uvicorn workers
    included) when this command ends: Ctrl-C, SIGTERM, SIGHUP or the server's own exit. Returns the exit code
    (128 + the signal that stopped us)."""
    import signal
    import subprocess

    server = subprocess.Popen(cmd, env=env, start_new_session=True)
    stopped_by: list[int] = []

    def stop(signum, frame):
        stopped_by.append(signum)

    saved = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        while server.poll() is None and not stopped_by:
            try:
                server.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
    finally:
        _stop_group(server)
        for s, h in saved.items():
            signal.signal(s, h)
    return 128 + stopped_by[0] if stopped_by else (server.returncode or 0)


def _stop_group(proc) -> None:
    """SIGTERM to the process group, SIGKILL to what is left after 10 s."""
    import os
    import signal
    import subprocess

    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        try:  # the leader is gone; its workers may not be
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
