"""`lfsd generate`: images from a model folder (the workspace's base by default) or a registered version,
with a warning for a `<token>` the model has not learned or had erased."""

from __future__ import annotations

from pathlib import Path

import typer

from components.cli.app import app
from components.cli.running import WORKSPACE_HELP, _fail, _placement, _workspace

DEFAULT_BASE = Path("models/base")


@app.command()
def generate(
    prompt: str = typer.Argument(..., help='Prompt, e.g. "a red star on a white background".'),
    n: int = typer.Option(8, help="Number of images."),
    out: Path = typer.Option(Path("grid.png"), help="PNG grid to write."),
    context: Path = typer.Option(None, help="Folder of reference images used as visual context (ICGen)."),
    model: str = typer.Option(
        None,
        help="Model folder (lfsd bundle or a local Stable Diffusion folder), or a registry URI such as "
        "models:/lfs-diffusion@production (default: the workspace's base, outside a workspace lfsd's own).",
    ),
    concept: str = typer.Option(None, help="Learned concept to draw with its references (registry models only)."),
    seed: int = typer.Option(0, help="First sampling seed; image i uses seed + i."),
    steps: int = typer.Option(None, min=1, help="DDIM steps (default: params.yaml sampling.steps)."),
    guidance: float = typer.Option(None, help="Guidance scale (default: params.yaml sampling.guidance_scale)."),
    workspace: Path = typer.Option(None, help=WORKSPACE_HELP),
    trust: bool = typer.Option(
        False,
        "--trust",
        help="Load a registered version whose code and pickle lfsd did not record (registered outside lfsd) or "
        "no longer match: they run here. Only for a version whose origin you know.",
    ),
) -> None:
    """Generate N images for a prompt and write them as one PNG grid."""
    registry = model is not None and model.startswith(("models:/", "runs:/"))
    if context is not None and not context.is_dir():
        _fail(f"error: --context {context}: no such folder", 2)
    if concept and not registry:
        _fail("error: --concept draws a learned concept of a registered version: add --model models:/NAME@ALIAS", 2)
    if registry:
        _generate_from_registry(model, prompt, n, out, concept, seed, steps, workspace, trust)
        return
    folder = Path(model) if model else _default_base(workspace)
    if not folder.is_dir():
        _fail(f"error: --model {folder}: no such folder (a model folder, or a registry URI models:/NAME@ALIAS)", 2)
    _warn_tokens(prompt, [], [])  # a folder's base has learned no concept
    _generate_from_folder(folder, prompt, n, out, context, seed, steps, guidance)


def _default_base(workspace: Path | None) -> Path:
    """The workspace's base (named, or the one we stand in), else the embedded base lfsd ships."""
    from components.config import REPO_ROOT
    from components.state import find_workspace

    root = workspace or find_workspace()
    if root is not None:
        from components.workspace.layout import load_workspace

        return load_workspace(_workspace(Path(root))).base_dir
    return REPO_ROOT / DEFAULT_BASE


def _warn_tokens(prompt: str, known: list[str], erased: list[str]) -> None:
    """A `<token>` in the prompt the model has not learned (or had erased) is drawn as plain words: say so."""
    import re

    for token in dict.fromkeys(re.findall(r"<([^<>\s]+)>", prompt)):
        if token in erased:
            typer.secho(f"warning: <{token}> was erased from this version: it draws as unknown text", err=True)
        elif token not in known:
            knows = f"it knows {', '.join(f'<{k}>' for k in known)}" if known else "it has learned no concept"
            typer.secho(f"warning: <{token}> is not a concept of this model ({knows})", err=True, fg="yellow")


def _generate_from_folder(folder, prompt, n, out, context, seed, steps, guidance) -> None:
    import torch

    from components.config import load_params
    from components.model.pipeline import load
    from components.model.pixels import to_uint8
    from components.model.references import load_reference_folder
    from components.model.sampling import generate as sample
    from components.visuals import save_grid

    params = load_params()
    torch.set_num_threads(params.runtime.threads)
    bundle = load(folder).requires_grad_(False).place(_placement(params.runtime))
    refs = None
    if context is not None:
        refs = load_reference_folder(context, bundle.image_size).unsqueeze(0).expand(n, -1, -1, -1, -1)
    images = sample(
        bundle,
        [prompt] * n,
        [seed + i for i in range(n)],
        references=refs,
        steps=steps or params.sampling.steps,
        guidance_scale=guidance or params.sampling.guidance_scale,
    )
    save_grid(to_uint8(images), out)
    typer.echo(str(out))


def _version(uri: str):
    """The registered version `uri` names (models:/NAME/N or models:/NAME@ALIAS): (name, version), or None
    for a URI that names no version (runs:/...); one line and exit 2 for one that does not exist."""
    import mlflow

    if not uri.startswith("models:/"):
        return None
    ref, client = uri.removeprefix("models:/"), mlflow.MlflowClient()
    try:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            return name, client.get_model_version_by_alias(name, alias)
        if "/" in ref:
            name, version = ref.split("/", 1)
            return name, client.get_model_version(name, version)
    except mlflow.exceptions.MlflowException as e:
        _fail(f"error: {uri}: no such registered version ({e.message.splitlines()[0]})", 2)
    return None


def _erased(uri: str) -> str | None:
    """Why the registered version `uri` names may not serve, if it held an erased concept."""
    from components.registry.erased_versions import refusal

    found = _version(uri)
    return refusal(found[0], str(found[1].version), found[1].tags or {}) if found else None


def _generate_from_registry(
    uri: str, prompt: str, n: int, out: Path, concept: str | None, seed: int, steps: int | None, workspace, trust
) -> None:
    import numpy as np
    import pandas as pd

    from components.registry import decode_png
    from components.registry.erased_versions import LEDGER_TAG, erased_from, refusal
    from components.registry.integrity import IntegrityError
    from components.registry.pyfunc import load_version
    from components.visuals import save_grid
    from components.workspace.layout import load_workspace
    from components.workspace.mlflow_store import open_tracking

    ws = load_workspace(_workspace(workspace))
    open_tracking(ws)
    found = _version(uri)
    if found is not None:
        name, mv = found
        refused = refusal(name, str(mv.version), mv.tags or {})
        if refused:
            _fail(f"error: {refused}")
        known = [c for c in str((mv.tags or {}).get(LEDGER_TAG, "")).split(",") if c]
        if concept and concept not in known:
            _fail(f"error: --concept {concept}: not a concept of {uri} (version {mv.version} knows {known})", 2)
        _warn_tokens(prompt, known, erased_from(mv.tags or {}))
    where = _placement(ws.params.runtime)
    placed = {"device": str(where.device), "precision": where.precision}
    try:  # its files checked against the version's record before anything of it runs (--trust: not its code)
        pyfunc = load_version(uri, trust=trust, model_config=placed)
    except IntegrityError as e:
        _fail(f"refused: {e}", 2)
    rows = {"prompt": [prompt] * n, "seed": [seed + i for i in range(n)]}
    if concept:
        rows["concept"] = [concept] * n
    if steps:
        rows["steps"] = [steps] * n
    frame = pyfunc.predict(pd.DataFrame(rows))
    save_grid(np.stack([np.asarray(decode_png(s)) for s in frame["image"]]), out)
    typer.echo(str(out))
