"""`lfsd serve`: the workspace's `production` version over HTTP on Ray Serve, following the alias."""

from __future__ import annotations

from pathlib import Path

import typer

from components.cli.app import app
from components.cli.running import WORKSPACE_HELP, _fail, _workspace


@app.command()
def serve(
    workspace: Path = typer.Option(None, help=WORKSPACE_HELP),
    host: str = typer.Option(None, help="Address the HTTP proxy listens on (default: params.yaml serving.host)."),
    port: int = typer.Option(None, min=1, max=65535, help="HTTP port (default: serving.port)."),
    replicas: int = typer.Option(None, min=1, help="Ray Serve replicas, each with a copy (default: serving.replicas)."),
    follow_seconds: float = typer.Option(
        None, min=0.05, help="How often each replica asks where `production` points (default: serving.follow_seconds)."
    ),
    max_batch_size: int = typer.Option(
        None, min=1, help="Concurrent requests merged into one denoising batch (default: serving.max_batch_size)."
    ),
) -> None:
    """Serve models:/<model_name>@production on POST /generate (GET /health, /version, /docs, and a page at /),
    following `production` as promote, rollback and forget move it. Runs until Ctrl-C or SIGTERM."""
    import dataclasses

    from components.serving.service import serve_until_stopped
    from components.workspace.layout import load_workspace
    from components.workspace.mlflow_store import open_tracking

    ws = load_workspace(_workspace(workspace))
    given = {"host": host, "port": port, "replicas": replicas, "follow_seconds": follow_seconds}
    given["max_batch_size"] = max_batch_size
    cfg = dataclasses.replace(ws.params.serving, **{k: v for k, v in given.items() if v is not None})
    open_tracking(ws)  # the store exists (and a registry that is down is named here, before Ray starts)
    try:
        serve_until_stopped(ws, cfg, log=lambda m: typer.echo(m))
    except OSError as e:  # the port is taken, ...
        _fail(f"error: {e}")
