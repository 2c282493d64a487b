"""`lfsd`: the single entry point. Heavy libraries are imported inside commands, so `lfsd --help`
and shell completion stay fast.

    app                the Typer app and its sub-apps
    pipeline_commands  commands that run or inspect the pipeline on a workspace (flows, registry)
    model_commands     generate, evaluate-base, world, benchmark
    export_command     `lfsd export`
    running            which workspace, the writer lock before Prefect starts, failures as one line
    errors             a failing service as one line naming it and what to do
"""

from components.cli import export_command, model_commands, pipeline_commands  # noqa: F401 (they register their commands)
from components.cli.app import app

__all__ = ["app"]
