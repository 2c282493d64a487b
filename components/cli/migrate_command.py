"""`lfsd migrate`: every live concept of the chain learned again on another base, beside the old chain
(`components/chains/migrate.py`); production does not move, a person promotes the new version."""

from __future__ import annotations

from pathlib import Path

import typer

from components.cli.app import app
from components.cli.running import NO_WAIT_HELP, SET_HELP, WORKSPACE_HELP, _fail, _run_flow, _workspace


def _say(message: str) -> None:
    import time

    for line in message.splitlines():
        typer.echo(f"{time.strftime('%H:%M:%S')} {line}")


@app.command()
def migrate(
    base: Path = typer.Option(..., "--base", help="The new base: an lfsd bundle or a local Stable Diffusion folder."),
    name: str = typer.Option(
        None,
        "--name",
        help="Label of the new chain (folders checkpoints-LABEL/, models/bases/LABEL); "
        "default: base-<first 8 hex of the base's hash>. The same label again resumes.",
    ),
    workspace: Path = typer.Option(None, help=WORKSPACE_HELP),
    no_wait: bool = typer.Option(False, "--no-wait", help=NO_WAIT_HELP),
    overrides: list[str] = typer.Option([], "--set", metavar="KEY=VALUE", help=SET_HELP),
) -> None:
    """Learn every concept of the chain again, in order, on the base BASE: a new chain beside the old one, a new
    model version that passes the same gate, and a scorecard old vs new. Production stays where it is
    (`lfsd promote V` serves the new chain, `lfsd rollback` returns to the old). Killed, the same command
    resumes at the concept in flight; the writer lock is taken once per concept, so onboarding goes on."""
    from components.chains.migrate import MigrationRefused
    from components.chains.migrate import migrate as run
    from components.chains.onboard import launcher
    from components.workspace.layout import load_workspace
    from components.workspace.side_chain import BadLabel

    root = _workspace(workspace, overrides)
    ws = load_workspace(root, overrides)
    try:
        r = _run_flow(run, ws, base.resolve(), name, launcher=launcher, log=_say, wait=not no_wait)
    except (MigrationRefused, BadLabel) as e:
        _fail(f"error: {e}", 2)
    typer.echo(
        f"migrated to {r.label}: {', '.join(r.chain)} (trained now: {', '.join(r.trained) or 'none'}); "
        f"model version {r.version}, gate {r.gate}; production = {r.production}"
    )
