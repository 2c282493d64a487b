"""`lfsd` commands on models and the embedded world: doctor, evaluate-base, world, benchmark."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from components.cli.app import app, bench_app, world_app
from components.cli.generate_command import _erased  # noqa: F401 (tests check it where it always was)
from components.cli.running import _fail, _placement

DEFAULT_BASE = Path("models/base")
DEFAULT_EVALUATOR = Path("models/evaluator")
MODELS_HELP = "(default: the workspace's, outside a workspace lfsd's own)"


def _models(model: Path | None, evaluator: Path | None) -> tuple[Path, Path]:
    """The base and evaluator folders: as given, else the workspace's (the one named by $LFSD_WORKSPACE or
    stood in), else the ones lfsd ships; checked before anything heavy starts."""
    from components.config import REPO_ROOT
    from components.state import WORKSPACE_ENV, find_workspace

    root = os.environ.get(WORKSPACE_ENV) or find_workspace() or REPO_ROOT
    model, evaluator = model or Path(root) / DEFAULT_BASE, evaluator or Path(root) / DEFAULT_EVALUATOR
    for flag, folder in (("--model", model), ("--evaluator", evaluator)):
        if not folder.is_dir():
            _fail(f"error: {flag} {folder}: no such folder", 2)
    return model, evaluator


def _figure(name: str) -> Path:
    """Where a benchmark writes its table by default: docs/figures/ of lfsd's repository when run there,
    else the current folder (a workspace has no docs/)."""
    from components.config import REPO_ROOT

    return Path("docs/figures") / name if Path.cwd().resolve() == REPO_ROOT.resolve() else Path(name)


@world_app.command("concepts")
def world_concepts(
    out: Path = typer.Option(..., help="Folder to write concept folders into."),
    n: int = typer.Option(5, help="Number of concepts."),
    shots: int = typer.Option(4, help="Images per concept."),
    seed: int = typer.Option(0, help="World seed; the same seed writes the same concepts."),
    similar: bool = typer.Option(
        False,
        "--similar",
        help="The stress sequence (issue 32, docs/similar.md): each concept after the first, with probability "
        "--similar-rate, shares one attribute with an earlier concept: the earlier concept uniform among those "
        "written so far, the attribute uniform among class, body colour, pattern (with its pattern colour), "
        "the rest drawn uniformly; otherwise it is drawn independently. A line per concept says what it shares.",
    ),
    similar_rate: float = typer.Option(
        None, min=0.0, max=1.0, help="With --similar: the share probability (default 0.7; 0: chance sharing only)."
    ),
) -> None:
    """Write N concept folders (K PNGs + concept.yaml each) of unseen world instances."""
    from components.world.concepts import write_concepts
    from components.world.similar import DEFAULT_SIMILAR_RATE, plan_similar

    if similar_rate is not None and not similar:
        _fail("error: --similar-rate needs --similar", 2)
    specs = plan_similar(n, seed, DEFAULT_SIMILAR_RATE if similar_rate is None else similar_rate) if similar else None
    for i, folder in enumerate(write_concepts(out, n, shots, seed, specs)):
        shares = specs[i].shares if specs else None
        typer.echo(str(folder) + (f"  shares {shares[1]} with {specs[shares[0]].name}" if shares else ""))


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


@app.command("evaluate-base")
def measure_base(
    seed: int = typer.Option(1000, help="Seed for fresh world images, unseen instances and sampling noise."),
    model: Path = typer.Option(None, help=f"Base model folder {MODELS_HELP}."),
    evaluator: Path = typer.Option(None, help=f"Evaluator folder {MODELS_HELP}."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Measure the evaluator and the base on data drawn fresh from SEED."""
    model, evaluator = _models(model, evaluator)
    from components.evaluation.base_quality import evaluate_base as run

    figures = run(model, evaluator, seed)
    if as_json:
        typer.echo(json.dumps(figures, indent=2))
    else:
        for k, v in figures.items():
            typer.echo(f"{k:32s} {v}")


@bench_app.command("forgetting")
def benchmark_forgetting(
    concepts: Path = typer.Option(
        None, help="Folder of concept folders, taught in name order (default: lfsd's examples/concepts)."
    ),
    methods: str = typer.Option("lfs,finetune,prior-preservation", help="Comma-separated methods."),
    seeds: str = typer.Option("0,1,2", help="Comma-separated seeds."),
    json_out: Path = typer.Option(
        None, "--json", help="Where to write the table (default: docs/figures/ in lfsd's repository, else here)."
    ),
    model: Path = typer.Option(None, help=f"Base model folder {MODELS_HELP}."),
    evaluator: Path = typer.Option(None, help=f"Evaluator folder {MODELS_HELP}."),
    work: Path = typer.Option(Path("outputs/benchmark"), help="Scratch folder for checkpoints."),
    adapter: str = typer.Option("", help="Override training.adapter for every method: lora or full-kv."),
    overrides: list[str] = typer.Option(
        [], "--set", help="Development override, e.g. training.lambda_kd=50 (repeatable)."
    ),
    mlflow: bool = typer.Option(True, "--mlflow/--no-mlflow", help="Also log one MLflow run per method x seed."),
) -> None:
    """Run every method over the concept sequence for every seed; write the forgetting table."""
    from components.config import REPO_ROOT

    model, evaluator = _models(model, evaluator)
    concepts = concepts or REPO_ROOT / "examples" / "concepts"
    if not concepts.is_dir():
        _fail(f"error: --concepts {concepts}: no such folder", 2)
    json_out = json_out or _figure("forgetting.json")
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
    json_out: Path = typer.Option(
        None, "--json", help="Where to write the rows (default: docs/figures/ in lfsd's repository, else here)."
    ),
    model: Path = typer.Option(None, help=f"Base model folder {MODELS_HELP}."),
    evaluator: Path = typer.Option(None, help=f"Evaluator folder {MODELS_HELP}."),
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
    model, evaluator = _models(model, evaluator)
    json_out = json_out or _figure("scale.json")
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
