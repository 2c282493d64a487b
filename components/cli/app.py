"""The `lfsd` Typer app and its sub-apps; commands register on them from their own modules."""

from __future__ import annotations

import typer

app = typer.Typer(help="lfsd: lifelong few-shot customization of text-to-image diffusion models.", no_args_is_help=True)
world_app = typer.Typer(help="The embedded procedural world.", no_args_is_help=True)
bench_app = typer.Typer(help="Measured benchmarks (results land in docs/).", no_args_is_help=True)
app.add_typer(world_app, name="world")
app.add_typer(bench_app, name="benchmark")
