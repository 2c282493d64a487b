"""How a lifelong chain becomes an MLflow model: the artifacts it carries (the base, every task
checkpoint, the references each concept is drawn with, a ledger that names artifacts instead of
paths, an index of their hashes and of those stored once in an earlier version: shared_artifacts.py),
its signature and pinned requirements, and logging/registering it in the active run with the hashes that
loading and exporting check (integrity.py)."""

from __future__ import annotations

import shutil
import tempfile
import warnings
from importlib import metadata
from pathlib import Path

from components.registry.pyfunc import (
    BASE_KEY,
    LEDGER_KEY,
    REFERENCE_LIMIT,
    LfsdPyfunc,
    checkpoint_key,
    references_key,
)

REQUIREMENTS = ("torch", "diffusers", "transformers", "peft", "safetensors", "pillow", "numpy", "pandas", "mlflow")


def pip_requirements() -> list[str]:
    """The runtime needs, pinned to what is installed here (local labels such as +cpu dropped, so
    `torch==2.13.0` still matches the CPU wheel)."""
    return [f"{name}=={metadata.version(name).split('+')[0]}" for name in REQUIREMENTS]


def model_signature():
    """Input: prompt (required), concept / seed / steps (optional). Output: image (base64 PNG), seed."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = Schema(
        [
            ColSpec("string", "prompt"),
            ColSpec("string", "concept", required=False),
            ColSpec("long", "seed", required=False),
            ColSpec("long", "steps", required=False),
        ]
    )
    outputs = Schema([ColSpec("string", "image"), ColSpec("long", "seed")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def stage_artifacts(checkpoint_dir: str | Path, base_dir: str | Path, staging: Path) -> tuple[dict[str, str], dict]:
    """The `artifacts` mapping for log_model plus a metadata summary. The copied ledger and the
    reference images are written under `staging`; the base and checkpoints are used in place."""
    from components.lifelong import LEDGER_FILE, read_ledger, verify_base
    from components.model.pipeline import has_trained_context_path
    from components.model.references import IMAGE_SUFFIXES
    from components.training.methods import uses_icgen

    checkpoint_dir, base_dir = Path(checkpoint_dir).resolve(), Path(base_dir).resolve()
    ledger = read_ledger(checkpoint_dir)
    if not ledger.entries:
        raise ValueError(f"{checkpoint_dir}: the ledger lists no concepts")
    verify_base(base_dir, ledger.base_hash)
    icgen = uses_icgen(ledger.method, has_trained_context_path(base_dir))
    artifacts = {BASE_KEY: str(base_dir)}
    source = {"checkpoints": [], "references": []}
    for entry in ledger.entries:
        ckpt = Path(entry.checkpoint)  # as read_ledger resolved it (a removal's chain ends in a checkpoint
        if not ckpt.is_dir() and entry is ledger.entries[-1]:  # that holds no task of its own)
            ckpt = checkpoint_dir
        if not ckpt.is_dir():
            raise FileNotFoundError(
                f"checkpoint {entry.checkpoint!r} of the chain ending in {checkpoint_dir} not found"
            )
        artifacts[checkpoint_key(entry.task)] = str(ckpt)
        source["checkpoints"].append(str(ckpt))
        entry.checkpoint = checkpoint_key(entry.task)
        refs = Path(entry.references) if entry.references else None
        files = (
            sorted(p for p in refs.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:REFERENCE_LIMIT]
            if refs is not None and refs.is_dir()
            else []
        )
        source["references"].append(str(refs) if refs else "")
        if not files:
            if icgen:
                raise FileNotFoundError(
                    f"concept {entry.name!r}: no reference images in {entry.references!r} "
                    f"(method {ledger.method!r} draws with them)"
                )
            entry.references = ""
            continue
        out = staging / references_key(entry.task)
        out.mkdir(parents=True)
        for f in files:
            shutil.copy2(f, out / f.name)
        artifacts[references_key(entry.task)] = str(out)
        entry.references = references_key(entry.task)
    ledger.base = BASE_KEY
    ledger.save(staging / LEDGER_FILE)
    artifacts[LEDGER_KEY] = str(staging / LEDGER_FILE)
    summary = {
        "method": ledger.method,
        "icgen": icgen,
        "concepts": ledger.names(),
        "tokens": [e.token for e in ledger.entries],
        "base_hash": ledger.base_hash,
        "source_checkpoint": str(checkpoint_dir),
        "source": source,
    }
    return artifacts, summary


def log_lifelong_model(
    checkpoint_dir: str | Path,
    base_dir: str | Path,
    name: str = "model",
    registered_model_name: str | None = None,
    tags: dict[str, str] | None = None,
    *,
    share_with: str | None = None,
    steps: int | None = None,
    guidance_scale: float | None = None,
):
    """Log the lifelong model of `checkpoint_dir` (the last task of a chain) as a pyfunc named `name` in the
    active run (MLflow 3 logs a run-less LoggedModel when none is active; `register_version` needs a run) and,
    with `registered_model_name`, register it; `tags` go on the logged model and, when registered, on the new
    model version.
    With `share_with` (a registered model's name), the base, checkpoints and references its newest version
    already stores with the same hash are not copied again: the version's index points at them.
    Returns mlflow's ModelInfo (`registered_model_version` is set when registered)."""
    import mlflow

    import components
    from components.config import load_params
    from components.registry import integrity
    from components.registry import shared_artifacts as shared

    sampling = load_params().sampling  # the served model samples as `lfsd generate` does
    steps = sampling.steps if steps is None else steps
    guidance_scale = sampling.guidance_scale if guidance_scale is None else guidance_scale
    with tempfile.TemporaryDirectory(prefix="lfsd-stage-") as tmp, warnings.catch_warnings():
        # An input example would make mlflow load the model and run a full generation to validate it.
        warnings.filterwarnings("ignore", message=".*input example was not provided.*")
        artifacts, summary = stage_artifacts(checkpoint_dir, base_dir, Path(tmp))
        # The base's hash is the one stage_artifacts verified; the rest are small folders.
        hashes = shared.content_hashes(artifacts, skip=(LEDGER_KEY, BASE_KEY)) | {BASE_KEY: summary["base_hash"]}
        stored = shared.stored_by_newest(mlflow.MlflowClient(), share_with) if share_with else {}
        # Every file of every artifact and of the code, hashed as logged (integrity.py checks them on load).
        files = {key: integrity.file_hashes(path) for key, path in artifacts.items()}
        code_path, code = integrity.stage_code(Path(components.__file__).resolve().parent, Path(tmp))
        artifacts, kept_elsewhere = shared.split_shared(artifacts, hashes, stored)
        artifacts[shared.INDEX_KEY] = str(shared.write_index(Path(tmp), hashes, kept_elsewhere, files, code))
        summary["shared"] = sorted(kept_elsewhere)
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=LfsdPyfunc(),
            artifacts=artifacts,
            code_paths=[str(code_path)],
            pip_requirements=pip_requirements(),
            signature=model_signature(),
            # device and precision are overridable at load (mlflow.pyfunc.load_model(uri, model_config=...))
            model_config={
                "steps": int(steps),
                "guidance_scale": float(guidance_scale),
                "device": "auto",
                "precision": "fp32",
            },
            metadata={"lfsd": summary},
            registered_model_name=registered_model_name,
            tags=dict(tags) if tags else None,
        )
    integrity.record_package(info.model_id)  # what MLflow wrote (MLmodel, pickle) and the index, read back
    if registered_model_name and tags and info.registered_model_version is not None:
        client = mlflow.MlflowClient()
        for k, v in tags.items():
            client.set_model_version_tag(registered_model_name, str(info.registered_model_version), k, str(v))
    return info
