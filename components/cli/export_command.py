"""`lfsd export`: a registered version's concepts as LoRA + textual-inversion files for other tools.

The work is in components/registry/export.py; this only finds the registry (as `lfsd generate` does:
$MLFLOW_TRACKING_URI, else the workspace's store) and turns a refusal or a broken version into one line
and a non-zero exit (refused: 2, anything else: 1), with nothing written in --out.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from components.cli.app import app
from components.cli.running import WORKSPACE_HELP, _fail


def _point_at_registry(workspace: Path | None) -> None:
    """The tracking URI: $MLFLOW_TRACKING_URI, else the workspace's
    sqlite store, which must exist (export reads; it never creates a store)."""
    import mlflow

    from components.registry.tracking import tracking_uri_default
    from components.workspace.layout import WorkspaceNotFound, workspace_root

    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        try:
            root = workspace_root(workspace)
        except WorkspaceNotFound as e:
            _fail(f"error: {e}")
        uri = tracking_uri_default(root)
        db = Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None
        if db is not None and not db.is_file():
            _fail(f"error: {root}: this workspace has no MLflow store yet ({db}): nothing is registered to export")
    mlflow.set_tracking_uri(uri)  # the registry follows it (or MLflow's own MLFLOW_REGISTRY_URI, if set)


@app.command("export")
def export_command(
    model: str = typer.Argument(
        ..., help="Registered version: models:/NAME/N, models:/NAME@ALIAS or runs:/RUN_ID/PATH."
    ),
    out: Path = typer.Option(..., "--out", help="Folder to write (must not exist, or be empty)."),
    fmt: str = typer.Option(
        "kohya",
        "--format",
        help="kohya (default: lora_unet_* keys, which diffusers, ComfyUI, A1111/Forge and kohya all read) or "
        "diffusers (peft keys only diffusers reads; the LoRA files are named *.diffusers.safetensors).",
    ),
    merged: bool = typer.Option(
        False,
        "--merged",
        help="One LoRA (ranks concatenated, exact) for all the version's concepts, and beside the per-concept "
        "embeddings one file with every token (for diffusers).",
    ),
    workspace: Path = typer.Option(None, help=WORKSPACE_HELP),
) -> None:
    """Export a registered version's concepts (LoRA + token per concept, or merged) with a README."""
    from components.registry.export import FORMATS, ExportError, ExportRefused, export

    if fmt not in FORMATS:
        _fail(f"error: --format {fmt!r}: choose one of {', '.join(FORMATS)}", 2)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    _point_at_registry(workspace)
    try:
        written = export(model, out, fmt, merged)
    except ExportRefused as e:
        _fail(f"refused: {e}\n  nothing was written to {out}", 2)
    except ExportError as e:
        _fail(f"error: {e}\n  nothing was written to {out}", 1)
    except Exception as e:
        from components.cli.errors import service_failure

        message = service_failure(e)
        if message is None:
            raise
        _fail(f"{message}\n  nothing was written to {out}", 1)
    for path in written:
        typer.echo(str(Path(out) / path))
