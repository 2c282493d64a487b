"""`lfsd` commands on models and the embedded world: generate, evaluate-base, world, benchmark."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from components.cli.app import app, bench_app, world_app
from components.cli.running import _fail

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
    model: str = typer.Option(
        str(DEFAULT_BASE),
        help="Model folder (lfsd bundle or a local Stable Diffusion folder), "
        "or a registry URI such as models:/lfs-diffusion@production.",
    ),
    concept: str = typer.Option(None, help="Learned concept to draw with its references (registry models only)."),
    seed: int = typer.Option(0, help="First sampling seed; image i uses seed + i."),
    steps: int = typer.Option(None, help="DDIM steps (default: params.yaml sampling.steps)."),
    guidance: float = typer.Option(None, help="Guidance scale (default: params.yaml sampling.guidance_scale)."),
) -> None:
    """Generate N images for a prompt and write them as one PNG grid."""
    import torch

    from components.config import load_params
    from components.model.pipeline import load
    from components.model.pixels import to_uint8
    from components.model.references import load_reference_folder
    from components.model.sampling import generate as sample
    from components.visuals import save_grid

    params = load_params()
    torch.set_num_threads(params.runtime.threads)
    if model.startswith("models:/") or model.startswith("runs:/"):
        _generate_from_registry(model, prompt, n, out, concept, seed, steps)
        return
    bundle = load(Path(model)).requires_grad_(False).place(_placement(params.runtime))
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


@app.command()
def doctor(
    workspace: Path = typer.Option(None, help="Workspace whose params.yaml to read (default: the one you stand in)."),
    as_json: bool = typer.Option(False, "--json", help="Print the facts as one JSON object."),
) -> None:
    """Which device and precision lfsd's commands will use here, the GPU's name and free memory, and why
    (a CPU fallback says why); Ray's GPU setting beside it."""
    from components.config import load_params
    from components.device import DeviceError, check_local_ray_gpus, facts
    from components.state import find_workspace
    from components.workspace.layout import load_workspace

    root = workspace or find_workspace()
    params = load_workspace(root).params if root else load_params()
    out = facts(_placement(params.runtime)) | {"ray.use_gpu": params.ray.use_gpu, "workspace": str(root or "")}
    try:
        check_local_ray_gpus(params.ray)
    except DeviceError as e:
        _fail(f"error: {e}")
    if as_json:
        typer.echo(json.dumps(out))
        return
    for k, v in out.items():
        typer.echo(f"{k:16s} {v}")


def _placement(runtime):
    """runtime.device / runtime.precision checked against this machine: a one-line error if it cannot."""
    from components.device import DeviceError, placement

    try:
        return placement(runtime)
    except DeviceError as e:
        _fail(f"error: {e}")


def _erased(uri: str) -> str | None:
    """Why the registered version `uri` names (models:/NAME/N or models:/NAME@ALIAS) may not serve, if it held an
    erased concept."""
    import mlflow

    from components.registry.erased_versions import refusal

    ref = uri.removeprefix("models:/")
    client = mlflow.MlflowClient()
    if "@" in ref:
        name, alias = ref.split("@", 1)
        mv = client.get_model_version_by_alias(name, alias)
    elif "/" in ref:
        name, version = ref.split("/", 1)
        mv = client.get_model_version(name, version)
    else:
        return None
    return refusal(name, str(mv.version), mv.tags or {})


def _generate_from_registry(
    uri: str, prompt: str, n: int, out: Path, concept: str | None, seed: int, steps: int | None
) -> None:
    import mlflow
    import numpy as np
    import pandas as pd

    from components.registry import decode_png
    from components.visuals import save_grid
    from components.workspace.layout import load_workspace
    from components.workspace.mlflow_store import open_tracking

    ws = load_workspace()
    open_tracking(ws)
    refused = _erased(uri)
    if refused:
        _fail(f"error: {refused}")
    where = _placement(ws.params.runtime)
    pyfunc = mlflow.pyfunc.load_model(uri, model_config={"device": str(where.device), "precision": where.precision})
    rows = {"prompt": [prompt] * n, "seed": [seed + i for i in range(n)]}
    if concept:
        rows["concept"] = [concept] * n
    if steps:
        rows["steps"] = [steps] * n
    frame = pyfunc.predict(pd.DataFrame(rows))
    save_grid(np.stack([np.asarray(decode_png(s)) for s in frame["image"]]), out)
    typer.echo(str(out))


@app.command("evaluate-base")
def measure_base(
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
    overrides: list[str] = typer.Option(
        [], "--set", help="Development override, e.g. training.lambda_kd=50 (repeatable)."
    ),
    mlflow: bool = typer.Option(True, "--mlflow/--no-mlflow", help="Also log one MLflow run per method x seed."),
) -> None:
    """Run every method over the concept sequence for every seed; write the forgetting table."""
    from benchmarks.forgetting import run

    report = run(
        concepts,
        methods.split(","),
        [int(s) for s in seeds.split(",")],
        json_out,
        model,
        evaluator,
        work,
        log=typer.echo,
        adapter=adapter or None,
        overrides=overrides,
        to_mlflow=mlflow,
    )
    for name, row in report["methods"].items():
        typer.echo(
            f"{name:20s} forgetting {row['avg_forgetting']['mean']:.3f}+-{row['avg_forgetting']['std']:.3f}"
            f"  rcf {row['rcf_preservation']['mean']:.3f}  new {row['new_concept_fidelity']['mean']:.3f}"
            f"  step x{row.get('step_time_ratio_vs_finetune') or float('nan'):.2f}"
        )
    typer.echo(f"wrote {json_out} in {report['wall_seconds']:.0f} s")


@bench_app.command("scale")
def benchmark_scale(
    n: int = typer.Option(50, min=1, help="Concepts in the sequence (world concepts, drawn with --seed)."),
    seed: int = typer.Option(0, help="Seed of the concept sequence and of training."),
    methods: str = typer.Option("lfs,finetune", help="Comma-separated methods."),
    shots: int = typer.Option(4, min=1, help="Shots per concept."),
    json_out: Path = typer.Option(Path("docs/figures/scale.json"), "--json", help="Where to write the rows."),
    model: Path = typer.Option(DEFAULT_BASE, help="Base model folder."),
    evaluator: Path = typer.Option(DEFAULT_EVALUATOR, help="Evaluator folder."),
    work: Path = typer.Option(Path("outputs/benchmark-scale"), help="Scratch folder (concepts, checkpoints)."),
    overrides: list[str] = typer.Option([], "--set", help="Development override, e.g. training.steps=50 (repeatable)."),
    reference_every: int = typer.Option(
        1,
        min=1,
        help="Score the full row (the reference) every N steps and the last; "
        "1: every step (exact, O(k^2) generations over the sequence).",
    ),
    stop_after: int = typer.Option(
        None,
        min=1,
        help="Teach only the first N concepts of the n-concept sequence "
        "(a diagnosis of its early steps: the sequence drawn depends on --n).",
    ),
    order: str = typer.Option(
        None,
        help="Teach these concepts of the n-concept sequence, in this order: 1-based "
        "positions and ranges, e.g. 1-15,20,21,22,19 (a counterfactual of the same draw).",
    ),
) -> None:
    """Teach a long sequence; per step k record forgetting, cost, storage, load and generation time."""
    from benchmarks.scale import parse_order, run

    report = run(
        n,
        seed,
        methods.split(","),
        json_out,
        model,
        evaluator,
        work,
        shots=shots,
        overrides=overrides,
        log=typer.echo,
        reference_every=reference_every,
        stop_after=stop_after,
        order=parse_order(order, n) if order else None,
    )
    typer.echo(f"wrote {json_out} in {report['wall_seconds']:.0f} s")
