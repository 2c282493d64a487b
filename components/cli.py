"""`lfsd`: the single entry point. Heavy libraries are imported inside commands, so `lfsd --help`
and shell completion stay fast."""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(help="lfsd: lifelong few-shot customization of text-to-image diffusion models.", no_args_is_help=True)
world_app = typer.Typer(help="The embedded procedural world.", no_args_is_help=True)
app.add_typer(world_app, name="world")

DEFAULT_BASE = Path("models/base")
DEFAULT_EVALUATOR = Path("models/evaluator")


@world_app.command("concepts")
def world_concepts(
    out: Path = typer.Option(..., help="Folder to write concept folders into."),
    n: int = typer.Option(5, help="Number of concepts."),
    shots: int = typer.Option(4, help="Images per concept."),
    seed: int = typer.Option(0, help="World seed; the same seed writes the same concepts."),
) -> None:
    """Write N concept folders (K PNGs + concept.yaml each) of unseen world instances."""
    from components.world.concepts import write_concepts

    for folder in write_concepts(out, n, shots, seed):
        typer.echo(str(folder))


@world_app.command("sample")
def world_sample(
    out: Path = typer.Option(Path("world.png"), help="PNG grid to write."),
    n: int = typer.Option(64, help="Number of scenes."),
    seed: int = typer.Option(0, help="World seed."),
) -> None:
    """Write a grid of generic world scenes (what the base was trained on)."""
    import numpy as np

    from components.visuals import save_grid
    from components.world.scenes import sample_scene

    rng = np.random.default_rng(seed)
    save_grid(np.stack([sample_scene(rng).image for _ in range(n)]), out)
    typer.echo(str(out))


@app.command()
def generate(
    prompt: str = typer.Argument(..., help='Prompt, e.g. "a red star on a white background".'),
    n: int = typer.Option(8, help="Number of images."),
    out: Path = typer.Option(Path("grid.png"), help="PNG grid to write."),
    context: Path = typer.Option(None, help="Folder of reference images used as visual context (ICGen)."),
    model: str = typer.Option(str(DEFAULT_BASE), help="Model folder (lfsd bundle or a local Stable Diffusion folder), "
                              "or a registry URI such as models:/lfs-diffusion@production."),
    concept: str = typer.Option(None, help="Learned concept to draw with its references (registry models only)."),
    seed: int = typer.Option(0, help="First sampling seed; image i uses seed + i."),
    steps: int = typer.Option(None, help="DDIM steps (default: params.yaml sampling.steps)."),
    guidance: float = typer.Option(None, help="Guidance scale (default: params.yaml sampling.guidance_scale)."),
) -> None:
    """Generate N images for a prompt and write them as one PNG grid."""
    import torch

    from components.config import load_params
    from components.model.pipeline import load
    from components.model.references import load_reference_folder
    from components.model.sampling import generate as sample
    from components.pretraining.data import to_uint8
    from components.visuals import save_grid

    params = load_params()
    torch.set_num_threads(2)
    if model.startswith("models:/") or model.startswith("runs:/"):
        _generate_from_registry(model, prompt, n, out, concept, seed, steps)
        return
    bundle = load(Path(model))
    refs = None
    if context is not None:
        refs = load_reference_folder(context, bundle.vae.config.sample_size).unsqueeze(0).expand(n, -1, -1, -1, -1)
    images = sample(
        bundle, [prompt] * n, [seed + i for i in range(n)], references=refs,
        steps=steps or params.sampling.steps, guidance_scale=guidance or params.sampling.guidance_scale,
    )
    save_grid(to_uint8(images), out)
    typer.echo(str(out))


def _generate_from_registry(uri: str, prompt: str, n: int, out: Path, concept: str | None, seed: int, steps: int | None) -> None:
    import mlflow
    import numpy as np
    import pandas as pd

    from components.onboarding.workspace import load_workspace
    from components.registry import decode_png, setup_tracking
    from components.visuals import save_grid

    ws = load_workspace()
    setup_tracking(ws.root, ws.params.pipeline.experiment)
    pyfunc = mlflow.pyfunc.load_model(uri)
    rows = {"prompt": [prompt] * n, "seed": [seed + i for i in range(n)]}
    if concept:
        rows["concept"] = [concept] * n
    if steps:
        rows["steps"] = [steps] * n
    frame = pyfunc.predict(pd.DataFrame(rows))
    save_grid(np.stack([np.asarray(decode_png(s)) for s in frame["image"]]), out)
    typer.echo(str(out))


@app.command("evaluate-base")
def evaluate_base(
    seed: int = typer.Option(1000, help="Seed for fresh world images, unseen instances and sampling noise."),
    model: Path = typer.Option(DEFAULT_BASE, help="Base model folder."),
    evaluator: Path = typer.Option(DEFAULT_EVALUATOR, help="Evaluator folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Measure the evaluator and the base on data drawn fresh from SEED."""
    from components.evaluation.base_quality import evaluate_base as run

    figures = run(model, evaluator, seed)
    if as_json:
        typer.echo(json.dumps(figures, indent=2))
    else:
        for k, v in figures.items():
            typer.echo(f"{k:32s} {v}")


bench_app = typer.Typer(help="Measured benchmarks (results land in docs/).", no_args_is_help=True)
app.add_typer(bench_app, name="benchmark")


@bench_app.command("forgetting")
def benchmark_forgetting(
    concepts: Path = typer.Option(Path("examples/concepts"), help="Folder of concept folders, taught in name order."),
    methods: str = typer.Option("lfs,finetune,prior-preservation", help="Comma-separated methods."),
    seeds: str = typer.Option("0,1,2", help="Comma-separated seeds."),
    json_out: Path = typer.Option(Path("docs/figures/forgetting.json"), "--json", help="Where to write the table."),
    model: Path = typer.Option(DEFAULT_BASE, help="Base model folder."),
    evaluator: Path = typer.Option(DEFAULT_EVALUATOR, help="Evaluator folder."),
    work: Path = typer.Option(Path("outputs/benchmark"), help="Scratch folder for checkpoints."),
    adapter: str = typer.Option("", help="Override training.adapter for every method: lora or full-kv."),
    overrides: list[str] = typer.Option([], "--set", help="Development override, e.g. training.lambda_kd=50 (repeatable)."),
) -> None:
    """Run every method over the concept sequence for every seed; write the forgetting table."""
    from benchmarks.forgetting import run

    report = run(concepts, methods.split(","), [int(s) for s in seeds.split(",")], json_out, model, evaluator, work,
                 log=typer.echo, adapter=adapter or None, overrides=overrides)
    for name, row in report["methods"].items():
        typer.echo(f"{name:20s} forgetting {row['avg_forgetting']['mean']:.3f}+-{row['avg_forgetting']['std']:.3f}"
                   f"  rcf {row['rcf_preservation']['mean']:.3f}  new {row['new_concept_fidelity']['mean']:.3f}"
                   f"  step x{row.get('step_time_ratio_vs_finetune') or float('nan'):.2f}")
    typer.echo(f"wrote {json_out} in {report['wall_seconds']:.0f} s")


# ---------------------------------------------------------------- the pipeline (Prefect flows)

WORKSPACE_HELP = "Workspace repository (default: $LFSD_WORKSPACE or this repository)."


def _fail(message: str, code: int = 1) -> None:
    typer.secho(message, err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def _run_flow(fn, *args, **kwargs):
    """Run a flow; a rejected input or a refused registry operation is a clear message and exit code,
    not a traceback."""
    from components.registry import RegistryError
    from components.validation import ValidationError
    from components.versioning import VersioningError

    try:
        return fn(*args, **kwargs)
    except ValidationError as e:
        _fail(str(e), 2)
    except (RegistryError, VersioningError, FileNotFoundError) as e:
        _fail(f"error: {e}", 1)


def _print_results(results) -> None:
    for r in results:
        if r.status == "already-onboarded":
            typer.echo(f"{r.concept}: already onboarded ({r.dataset}); nothing changed")
        else:
            typer.echo(f"{r.concept}: {r.checkpoint}, model version {r.version}, gate {r.gate}; production = {r.production}")


@app.command()
def onboard(
    concept_dir: Path = typer.Argument(..., help="Concept folder: 3-10 images + concept.yaml (name, class_word)."),
    workspace: Path = typer.Option(None, help=WORKSPACE_HELP),
) -> None:
    """Validate, version, train (Ray Train), evaluate, register and gate ONE concept (Prefect flow)."""
    from flows.onboard import onboard_concept

    _print_results([_run_flow(onboard_concept, str(concept_dir), workspace=str(workspace) if workspace else None)])


@app.command()
def sequence(
    concept_dirs: list[Path] = typer.Argument(..., help="Concept folders, onboarded in this order."),
    workspace: Path = typer.Option(None, help=WORKSPACE_HELP),
    run_name: str = typer.Option("sequence", help="Name of the MLflow parent run."),
) -> None:
    """Onboard several concepts in order under one MLflow parent run (Prefect flow)."""
    from flows.sequence import lifelong_sequence

    _print_results(_run_flow(lifelong_sequence, [str(d) for d in concept_dirs],
                             workspace=str(workspace) if workspace else None, run_name=run_name))


@app.command()
def evaluate(
    checkpoint: Path = typer.Option(None, help="Checkpoint folder (default: the newest of the chain)."),
    workspace: Path = typer.Option(None, help=WORKSPACE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """Re-run the forgetting evaluation on a checkpoint (writes figures under .lfsd/figures, changes nothing versioned)."""
    from components.onboarding.evaluation import evaluate_checkpoint
    from components.onboarding.workspace import load_workspace

    ws = load_workspace(workspace)
    chain = ws.checkpoints()
    if not chain:
        _fail(f"{ws.checkpoint_dir}: no checkpoint yet; onboard a concept first")
    target = (checkpoint or chain[-1]).resolve()
    if target not in chain:
        _fail(f"{target}: not a checkpoint of the chain in {ws.checkpoint_dir}")
    i = chain.index(target)
    ev = evaluate_checkpoint(ws, target, chain[i - 1] if i else None, ws.state_dir / "figures" / f"evaluate-{target.name}",
                             record=False)
    out = {k: v for k, v in ev.metrics.items()} | {"step": ev.current, "heatmap": str(ev.heatmap), "samples": str(ev.samples)}
    if as_json:
        typer.echo(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            typer.echo(f"{k:22s} {v}")


@app.command()
def promote(
    version: str = typer.Argument(..., help="Model version to serve."),
    reason: str = typer.Option("manual promotion", help="Recorded on the version."),
    workspace: Path = typer.Option(None, help=WORKSPACE_HELP),
) -> None:
    """Move the `production` alias to VERSION (refused without lineage tags)."""
    from flows.registry import promote as promote_flow

    replaced = _run_flow(promote_flow, version, reason, workspace=str(workspace) if workspace else None)
    typer.echo(f"production: {replaced} -> {version}")


@app.command()
def rollback(workspace: Path = typer.Option(None, help=WORKSPACE_HELP)) -> None:
    """Move `production` back to the version it replaced."""
    from flows.registry import rollback as rollback_flow

    typer.echo(f"production rolled back to version {_run_flow(rollback_flow, workspace=str(workspace) if workspace else None)}")


@app.command()
def ui(
    port: int = typer.Option(5000, help="Port on 127.0.0.1."),
    workspace: Path = typer.Option(None, help=WORKSPACE_HELP),
) -> None:
    """The MLflow UI over this workspace's runs and registry, on 127.0.0.1."""
    import os
    import subprocess
    import sys

    from components.onboarding.workspace import load_workspace
    from components.registry import artifact_root_default, tracking_uri_default

    ws = load_workspace(workspace)
    uri = tracking_uri_default(ws.root)
    typer.echo(f"MLflow UI on http://127.0.0.1:{port} (store {uri}); Ctrl-C stops it")
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    subprocess.run([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                    "--backend-store-uri", uri, "--default-artifact-root", artifact_root_default(ws.root).as_uri()],
                   env=env, check=False)


@app.command()
def schedule(
    cron: str = typer.Option("*/30 * * * *", help="When to look into the inbox."),
    workspace: Path = typer.Option(None, help=WORKSPACE_HELP),
) -> None:
    """Serve the inbox onboarding flow on a cron schedule (needs a Prefect server: PREFECT_API_URL)."""
    from flows.inbox import onboard_inbox

    onboard_inbox.serve(name="lfsd-inbox", cron=cron, parameters={"workspace": str(workspace) if workspace else None})


@app.command()
def inbox(workspace: Path = typer.Option(None, help=WORKSPACE_HELP)) -> None:
    """Onboard whatever waits in the inbox now (what the schedule runs)."""
    from flows.inbox import onboard_inbox

    _print_results(_run_flow(onboard_inbox, workspace=str(workspace) if workspace else None))


if __name__ == "__main__":
    app()
