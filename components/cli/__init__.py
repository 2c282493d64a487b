"""`lfsd`: the single entry point. Heavy libraries are imported inside commands, so `lfsd --help`
and shell completion stay fast."""

from components.cli import export_command, model_commands, pipeline_commands  # noqa: F401 (they register their commands)
from components.cli.app import app

__all__ = ["app"]
