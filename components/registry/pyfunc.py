"""The lifelong model as an MLflow pyfunc: a self-contained artifact that needs nothing but itself.

Logged artifacts (each under `artifacts/` of the MLflow model):

    base               the base model folder, byte-identical (its content hash is verified on load)
    checkpoint_NN      every task checkpoint of the chain (LoRA + token + ledger), task NN = 01, 02, ...
    references_NN      the reference images each concept is drawn with (ICGen), the first few by name
    ledger             a copy of the last checkpoint's ledger whose paths are artifact keys, not paths

`load_context` turns the copied ledger's keys back into the local artifact paths and rebuilds the
model with `LifelongModel.from_checkpoint`. `predict` takes a DataFrame (`prompt`, optional
`concept`, `seed`, `steps`) and returns base64-encoded PNGs, which serialise over
`mlflow models serve` JSON.
"""

from __future__ import annotations

import base64
import io
import shutil
import tempfile
import warnings
from importlib import metadata
from pathlib import Path

import mlflow.pyfunc
import pandas as pd

BASE_KEY = "base"
LEDGER_KEY = "ledger"
REFERENCE_LIMIT = 3  # references per concept at generation time (load_reference_folder's default)
DEFAULT_STEPS = 30
DEFAULT_GUIDANCE = 3.0  # params.yaml sampling.guidance_scale; used only if model_config lacks it
REQUIREMENTS = ("torch", "diffusers", "transformers", "peft", "safetensors", "pillow", "numpy", "pandas", "mlflow")


def checkpoint_key(task: int) -> str:
    return f"checkpoint_{task:02d}"


def references_key(task: int) -> str:
    return f"references_{task:02d}"


def pip_requirements() -> list[str]:
    """The runtime needs, pinned to what is installed here (local labels such as +cpu dropped, so
    `torch==2.13.0` still matches the CPU wheel)."""
    return [f"{name}=={metadata.version(name).split('+')[0]}" for name in REQUIREMENTS]


def model_signature():
    """Input: prompt (required), concept / seed / steps (optional). Output: image (base64 PNG), seed."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = Schema([
        ColSpec("string", "prompt"),
        ColSpec("string", "concept", required=False),
        ColSpec("long", "seed", required=False),
        ColSpec("long", "steps", required=False),
    ])
    outputs = Schema([ColSpec("string", "image"), ColSpec("long", "seed")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def _missing(value) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def encode_png(image) -> str:
    """(H, W, 3) uint8 -> base64 PNG text."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def decode_png(text: str):
    """base64 PNG text -> PIL image (for clients and tests)."""
    from PIL import Image

    image = Image.open(io.BytesIO(base64.b64decode(text)))
    image.load()
    return image


class LfsdPyfunc(mlflow.pyfunc.PythonModel):
    """Holds no state when pickled; everything is rebuilt from the artifacts in `load_context`."""

    def load_context(self, context) -> None:
        import torch

        from components.model.references import load_reference_folder
        from components.training.lifelong import LEDGER_FILE, Ledger, LifelongModel
        from components.training.methods import METHODS

        arts = context.artifacts
        ledger = Ledger.read(Path(arts[LEDGER_KEY]))
        ledger.base = arts[BASE_KEY]
        for entry in ledger.entries:
            entry.checkpoint = arts[entry.checkpoint]
            entry.references = arts[entry.references] if entry.references else ""
        work = Path(tempfile.mkdtemp(prefix="lfsd-pyfunc-"))
        try:
            ledger.save(work / LEDGER_FILE)  # from_checkpoint reads only the ledger from this folder
            self.model = LifelongModel.from_checkpoint(work, base_dir=Path(arts[BASE_KEY]))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        method = METHODS.get(ledger.method)
        self.icgen = bool(method and method.icgen)
        config = dict(context.model_config or {})
        self.default_steps = int(config.get("steps", DEFAULT_STEPS))
        self.guidance_scale = float(config.get("guidance_scale", DEFAULT_GUIDANCE))
        self.image_size = int(self.model.bundle.vae.config.sample_size)
        self.references: dict[str, torch.Tensor] = {}
        if self.icgen:
            for entry in self.model.ledger.entries:
                self.references[entry.name] = load_reference_folder(entry.references, self.image_size, REFERENCE_LIMIT)

    def concepts(self) -> list[str]:
        return self.model.ledger.names()

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from components.model.sampling import generate
        from components.pretraining.data import to_uint8

        df = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        if "prompt" not in df.columns:
            raise ValueError("model input needs a 'prompt' column")
        known = set(self.concepts())
        rows = []  # (position, prompt, concept or None, seed, steps)
        for i, (_, row) in enumerate(df.iterrows()):
            concept = row.get("concept") if "concept" in df.columns else None
            concept = None if _missing(concept) or str(concept) == "" else str(concept)
            if concept is not None and concept not in known:
                raise ValueError(f"unknown concept {concept!r}; this model knows {sorted(known)}")
            seed = row.get("seed") if "seed" in df.columns else None
            seed = i if _missing(seed) else int(seed)
            steps = row.get("steps") if "steps" in df.columns else None
            steps = self.default_steps if _missing(steps) else int(steps)
            if steps < 1:
                raise ValueError(f"row {i}: steps must be >= 1, got {steps}")
            rows.append((i, str(row["prompt"]), concept, seed, steps))

        images: list[str | None] = [None] * len(rows)
        groups: dict[tuple, list[tuple]] = {}
        for r in rows:
            ref_key = r[2] if (self.icgen and r[2] is not None) else None
            groups.setdefault((ref_key, r[4]), []).append(r)
        for (ref_key, steps), members in groups.items():
            refs = None
            if ref_key is not None:
                refs = self.references[ref_key].unsqueeze(0).expand(len(members), -1, -1, -1, -1)
            out = generate(self.model.bundle, [m[1] for m in members], [m[3] for m in members],
                           references=refs, steps=steps, guidance_scale=self.guidance_scale)
            for m, arr in zip(members, to_uint8(out)):
                images[m[0]] = encode_png(arr)
        return pd.DataFrame({"image": images, "seed": [r[3] for r in rows]})


def _resolve_checkpoint(path: str, checkpoint_dir: Path) -> Path:
    """A ledger path as written at training time, or the same folder name beside `checkpoint_dir`
    (checkpoints moved or restored elsewhere keep their sibling layout)."""
    p = Path(path)
    for candidate in (p, checkpoint_dir.parent.parent / p, checkpoint_dir.parent / p.name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"checkpoint {path!r} of the ledger in {checkpoint_dir} not found")


def stage_artifacts(checkpoint_dir: str | Path, base_dir: str | Path, staging: Path) -> tuple[dict[str, str], dict]:
    """The `artifacts` mapping for log_model plus a metadata summary. The copied ledger and the
    reference images are written under `staging`; the base and checkpoints are used in place."""
    from components.model.references import IMAGE_SUFFIXES
    from components.training.lifelong import LEDGER_FILE, Ledger, folder_hash, resolve_ledger_path
    from components.training.methods import METHODS

    checkpoint_dir, base_dir = Path(checkpoint_dir).resolve(), Path(base_dir).resolve()
    ledger = Ledger.read(checkpoint_dir / LEDGER_FILE)
    if not ledger.entries:
        raise ValueError(f"{checkpoint_dir}: the ledger lists no concepts")
    if folder_hash(base_dir) != ledger.base_hash:
        raise ValueError(f"{base_dir}: base hash differs from the one {checkpoint_dir} was trained on")
    method = METHODS.get(ledger.method)
    icgen = bool(method and method.icgen)
    artifacts = {BASE_KEY: str(base_dir)}
    source = {"checkpoints": [], "references": []}
    for entry in ledger.entries:
        ckpt = checkpoint_dir if entry is ledger.entries[-1] else _resolve_checkpoint(entry.checkpoint, checkpoint_dir)
        artifacts[checkpoint_key(entry.task)] = str(ckpt)
        source["checkpoints"].append(str(ckpt))
        entry.checkpoint = checkpoint_key(entry.task)
        refs = resolve_ledger_path(entry.references, checkpoint_dir) if entry.references else None
        files = sorted(p for p in refs.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:REFERENCE_LIMIT] \
            if refs is not None and refs.is_dir() else []
        source["references"].append(str(refs) if refs else "")
        if not files:
            if icgen:
                raise FileNotFoundError(f"concept {entry.name!r}: no reference images in {entry.references!r} "
                                        f"(method {ledger.method!r} draws with them)")
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
    steps: int | None = None,
    guidance_scale: float | None = None,
):
    """Log the lifelong model of `checkpoint_dir` (the last task of a chain) as a pyfunc named `name`
    in the active run (MLflow 3 logs a run-less LoggedModel when none is active; `register_version`
    needs a run) and, with `registered_model_name`, register it; `tags` go on the logged model and, when registered, on the new model version.
    Returns mlflow's ModelInfo (`registered_model_version` is set when registered)."""
    import mlflow

    import components
    from components.config import load_params

    sampling = load_params().sampling  # the served model samples as `lfsd generate` does
    steps = sampling.steps if steps is None else steps
    guidance_scale = sampling.guidance_scale if guidance_scale is None else guidance_scale
    code_path = str(Path(components.__file__).resolve().parent)
    with tempfile.TemporaryDirectory(prefix="lfsd-stage-") as tmp, warnings.catch_warnings():
        # An input example would make mlflow load the model and run a full generation to validate it.
        warnings.filterwarnings("ignore", message=".*input example was not provided.*")
        artifacts, summary = stage_artifacts(checkpoint_dir, base_dir, Path(tmp))
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=LfsdPyfunc(),
            artifacts=artifacts,
            code_paths=[code_path],
            pip_requirements=pip_requirements(),
            signature=model_signature(),
            model_config={"steps": int(steps), "guidance_scale": float(guidance_scale)},
            metadata={"lfsd": summary},
            registered_model_name=registered_model_name,
            tags=dict(tags) if tags else None,
        )
    if registered_model_name and tags and info.registered_model_version is not None:
        client = mlflow.MlflowClient()
        for k, v in tags.items():
            client.set_model_version_tag(registered_model_name, str(info.registered_model_version), k, str(v))
    return info
