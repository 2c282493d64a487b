"""`lfsd` commands that run or inspect the pipeline on a workspace (Prefect flows, MLflow registry)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from components.cli.app import app
from components.cli.running import NO_WAIT_HELP, SET_HELP, WORKSPACE_HELP, _fail, _run_flow, _workspace, _writer


def _print_results(results) -> None:
    for r in results:
        if r.status == "already-onboarded":
            typer.echo(f"{r.concept}: already onboarded ({r.dataset}); nothing changed")
        elif r.status == "registered-after-crash":
            typer.echo(
                f"{r.concept}: {r.checkpoint} was committed by a killed run and is now registered as model "
                f"version {r.version}, gate {r.gate}; production = {r.production}"
            )
        else:
            typer.echo(
                f"{r.concept}: {r.checkpoint}, model version {r.version}, gate {r.gate}; production = {r.production}"
            )


def _check_folders(root: str, folders: list[Path], overrides: list[str]) -> None:
    """Bad input refused in seconds: validated before the lock, Prefect or Ray (the chain validates again)."""
    from components.onboarding.dataset import check_folders
    from components.validation import ValidationError
    from components.workspace.layout import load_workspace

    try:
        check_folders(load_workspace(root, overrides), [f.resolve() for f in folders])
    except ValidationError as e:
        _fail(str(e), 2)


@app.command()
def onboard(
    concept_dir: Path = typer.Argument(..., help="Concept folder: 3-10 images + concept.yaml (name, class_word)."),
    workspace: Path = typer.Option(None, help=WORKSPACE_HELP),
    no_wait: bool = typer.Option(False, "--no-wait", help=NO_WAIT_HELP),
    overrides: list[str] = typer.Option([], "--set", metavar="KEY=VALUE", help=SET_HELP),
) -> None:
    """Validate, version, train (Ray Train), evaluate, register and gate ONE concept (Prefect flow)."""
    root = _workspace(workspace, overrides)
    _check_folders(root, [concept_dir], overrides)
    with _writer(root, f"onboard {concept_dir}", no_wait):
        from flows.onboard import onboard_concept

        _print_results([_run_flow(onboard_concept, str(concept_dir.resolve()), workspace=root, overrides=overrides)])


@app.command()
def sequence(
    concept_dirs: list[Path] = typer.Argument(..., help="Concept folders, onboarded in this order."),
    workspace: Path = typer.Option(None, help=WORKSPACE_HELP),
    run_name: str = typer.Option("sequence", help="Name of the MLflow parent run."),
    no_wait: bool = typer.Option(False, "--no-wait", help=NO_WAIT_HELP),
    overrides: list[str] = typer.Option([], "--set", metavar="KEY=VALUE", help=SET_HELP),
) -> None:
    """Onboard several concepts in order under one MLflow parent run (Prefect flow)."""
    root = _workspace(workspace, overrides)
    _check_folders(root, concept_dirs, overrides)
    with _writer(root, f"sequence {run_name}", no_wait):
        from flows.sequence import lifelong_sequence

        dirs = [str(d.resolve()) for d in concept_dirs]
        _print_results(_run_flow(lifelong_sequence, dirs, workspace=root, run_name=run_name, overrides=overrides))


@app.command("evaluate")
def rescore_checkpoint(
    checkpoint: Path = typer.Option(None, help="Checkpoint folder (default: the newest of the chain)."),
    workspace: Path = typer.Option(None, help=WORKSPACE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    overrides: list[str] = typer.Option([], "--set", metavar="KEY=VALUE", help=SET_HELP),
) -> None:
    """Re-run the forgetting evaluation on a checkpoint (writes figures under .lfsd/figures, changes nothing
    versioned)."""
    from components.onboarding.scoring import evaluate_checkpoint
    from components.workspace.layout import load_workspace

    ws = load_workspace(_workspace(workspace, overrides), overrides)
    chain = ws.checkpoints()
    if not chain:
        _fail(f"error: {ws.checkpoint_dir}: no checkpoint yet; onboard a concept first")
    target = (checkpoint or chain[-1]).resolve()
    if target not in chain:
        _fail(f"error: {target}: not a checkpoint of the chain in {ws.checkpoint_dir}")
    i = chain.index(target)
    ev = evaluate_checkpoint(
        ws,
        target,
        chain[i - 1] if i else None,
        ws.state_dir / "figures" / f"evaluate-{target.name}",
        record=False,
        show_progress=True,
    )
    out = {k: v for k, v in ev.metrics.items()} | {
        "step": ev.current,
        "heatmap": str(ev.heatmap),
        "samples": str(ev.samples),
    }
    if as_json:  # strict JSON: a metric that is not a number (NaN: nothing to compare yet) is null
        typer.echo(json.dumps(_strict(out), indent=2, allow_nan=False))
    else:
        for k, v in out.items():
            typer.echo(f"{k:22s} {v}")


def _strict(value):
    """`value` with every non-finite float (NaN, inf) as None, so strict JSON parsers read it."""
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def _promotion_refused(ws, version: str) -> str | None:
    """Why the real promote would refuse `version` (erased concept, missing lineage), else None."""
    from components.registry.aliases import missing_lineage
    from components.registry.erased_versions import refusal
    from components.workspace.mlflow_store import client

    name = ws.params.pipeline.model_name
    tags = client(ws).get_model_version(name, version).tags or {}
    refused = refusal(name, version, tags)
    if refused:
        return f"refusing to promote: {refused}"
    missing = missing_lineage(tags)
    return (
        f"refusing to promote {name} version {version}: missing lineage tags {', '.join(missing)}" if missing else None
    )


@app.command()
def promote(
    version: str = typer.Argument(..., help="Model version to serve."),
    reason: str = typer.Option("manual promotion", help="Recorded on the version."),
    workspace: Path = typer.Option(None, help=WORKSPACE_HELP),
    no_wait: bool = typer.Option(False, "--no-wait", help=NO_WAIT_HELP),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the card and the change; move nothing."),
) -> None:
    """Show VERSION's model card and how it differs from production, then move the `production` alias
    to it (refused without lineage tags)."""
    from contextlib import nullcontext

    root = _workspace(workspace)
    with nullcontext() if dry_run else _writer(root, f"promote {version}", no_wait):  # a dry run changes nothing
        from components.publishing.promotion import preview
        from components.workspace.layout import load_workspace
        from flows.registry import promote as promote_flow

        ws = load_workspace(root)
        typer.echo(_run_flow(preview, ws, version))
        if dry_run:  # what the real promote would say, with its exit code
            refused = _run_flow(_promotion_refused, ws, version)
            if refused:
                _fail(f"error: {refused} (dry run: nothing moved)")
            typer.echo(f"dry run: production would move to {version}; nothing moved")
            return
        replaced = _run_flow(promote_flow, version, reason, workspace=root)
    typer.echo(f"production: {replaced} -> {version}")


@app.command()
def rollback(
    workspace: Path = typer.Option(None, help=WORKSPACE_HELP),
    no_wait: bool = typer.Option(False, "--no-wait", help=NO_WAIT_HELP),
) -> None:
    """Move `production` back to the version it replaced."""
    root = _workspace(workspace)
    with _writer(root, "rollback", no_wait):
        from flows.registry import rollback as rollback_flow

        version = _run_flow(rollback_flow, workspace=root)
    typer.echo(f"production rolled back to version {version}")


@app.command()
def forget(
    name: str = typer.Argument(..., help="The concept to erase (its name in the chain)."),
    reason: str = typer.Option(
        ..., "--reason", help="Why (an erasure request, a licence ending): recorded in git and MLflow."
    ),
    force: bool = typer.Option(
        False, "--force", help="Erase even if the chain without it fails the gate while production holds it."
    ),
    retrain_later: bool = typer.Option(
        None,
        "--retrain-later/--keep-later",
        help="Relearn the concepts after it from their own datasets (exact: the model "
        "that never saw it), or keep them as trained (fast; something may be left). "
        "Default: params.yaml forget.retrain_later.",
    ),
    workspace: Path = typer.Option(None, help=WORKSPACE_HELP),
    no_wait: bool = typer.Option(False, "--no-wait", help=NO_WAIT_HELP),
) -> None:
    """Take concept NAME out of the lifelong model (a new version without it) and purge its photos from the
    workspace, the DVC cache and remotes and every MLflow artifact (Prefect flow)."""
    root = _workspace(workspace)
    with _writer(root, f"forget {name}", no_wait):
        from flows.forget import forget_concept

        r = _run_flow(forget_concept, name, reason, workspace=root, force=force, retrain_later=retrain_later)
    typer.echo(
        f"{r.concept}: erased; model version {r.version} holds the rest ({r.checkpoint}), gate {r.gate}; "
        f"production = {r.production}"
    )


@app.command()
def pull(workspace: Path = typer.Option(None, help=WORKSPACE_HELP)) -> None:
    """`dvc pull` of every dataset and checkpoint the checked-out commit names; erased data is named with its
    erasure record (who, when, why) instead of DVC's missing-cache error."""
    from components.checksums import CorruptFile
    from components.erasure.pull import ErasedData
    from components.erasure.pull import pull as pull_data
    from components.workspace.layout import load_workspace

    try:
        pulled = pull_data(load_workspace(_workspace(workspace)), log=lambda m: typer.echo(m, err=True))
    except ErasedData as e:
        _fail(f"erased: {e}")
    except CorruptFile as e:
        _fail(f"error: {e}")
    typer.echo(f"pulled {len(pulled)} datasets and checkpoints")


@app.command()
def schedule(
    cron: str = typer.Option("*/30 * * * *", help="When to look into the inbox."),
    workspace: Path = typer.Option(None, help=WORKSPACE_HELP),
    interval: float = typer.Option(None, min=1, help="Look into the inbox every SECONDS instead of on --cron."),
) -> None:
    """Serve the inbox onboarding flow on a schedule (needs a Prefect server: PREFECT_API_URL).

    The deployment `onboard-inbox/lfsd-inbox` runs one inbox tick at a time (later ticks wait) and
    stays scheduled when this process stops; starting it again resumes serving (flows/schedule.py)."""
    root = _workspace(workspace)
    from flows.schedule import FULL_NAME, api_url, serve_inbox

    if not api_url():
        _fail(
            "error: lfsd schedule needs a Prefect server: start one (infra/prefect/start-server.sh) and "
            "export PREFECT_API_URL=http://HOST:PORT/api"
        )
    when = f"every {interval:g} s" if interval else f"on cron {cron!r}"
    typer.echo(f"serving {FULL_NAME} {when} for the inbox of {root} (Ctrl-C stops serving; the schedule stays)")
    serve_inbox(root, cron=cron, interval=interval)


@app.command()
def inbox(workspace: Path = typer.Option(None, help=WORKSPACE_HELP)) -> None:
    """Onboard whatever waits in the inbox now (what the schedule runs)."""
    root = _workspace(workspace)
    with _writer(root, "inbox", no_wait=False):
        from flows.inbox import onboard_inbox

        _print_results(_run_flow(onboard_inbox, workspace=root))
