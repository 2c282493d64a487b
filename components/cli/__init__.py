"""`lfsd`: the single entry point. Heavy libraries are imported inside commands, so `lfsd --help`
and shell completion stay fast.

    app                the Typer app, its sub-apps, `--debug` / `--version`, failures and Ctrl-C in one line
    pipeline_commands  commands that run or inspect the pipeline on a workspace (flows, registry)
    model_commands     doctor, evaluate-base, world, benchmark
    generate_command   `lfsd generate` (a model folder or a registered version; warns on unknown tokens)
    workspace_commands `lfsd init` (and how to call this lfsd from anywhere), `lfsd ui` (stopped with what it started)
    export_command     `lfsd export`
    serve_command      `lfsd serve` (HTTP on Ray Serve, following `production`)
    migrate_command    `lfsd migrate` (every concept again on another base, beside the old chain)
    running            which workspace, the writer lock before Prefect starts, failures as one line
    errors             a failing service as one line naming it and what to do
"""

from components.cli import (  # noqa: F401 (they register their commands)
    export_command,
    generate_command,
    migrate_command,
    model_commands,
    pipeline_commands,
    serve_command,
    workspace_commands,
)
from components.cli.app import app

__all__ = ["app"]
