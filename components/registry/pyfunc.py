"""The lifelong model as an MLflow pyfunc: it needs nothing but its artifact store (no workspace, no checkout).
`load_version` is how lfsd loads one: its code and pickle checked before MLflow runs them (integrity.py).

Logged artifacts (each under `artifacts/` of the MLflow model):

    base               the base model folder, byte-identical (its content hash is verified on load)
    checkpoint_NN      every task checkpoint of the chain (LoRA + token + ledger), task NN = 01, 02, ...
    references_NN      the reference images each concept is drawn with (ICGen), the first few by name
    ledger             a copy of the last checkpoint's ledger whose paths are artifact keys, not paths
    index              the hash of each artifact above and of each of its files and of code/'s (integrity.py)
                       and, for those the version before already stored, where they are (shared_artifacts.py):
                       those are not copied again, but downloaded here

`load_context` fetches the shared artifacts, checks every artifact's files against the index, turns the
copied ledger's keys back into the local artifact paths, rebuilds the model with
`LifelongModel.from_ledger(fold=True)`: every LoRA added into the K/V weights as it is read (a served model
never trains; folded, loading and a UNet step cost what the base's do however long the chain).
`predict` takes a DataFrame (`prompt`, optional `concept`, `seed`, `steps`) and returns
base64-encoded PNGs, which serialise over `mlflow models serve` JSON.
"""

from __future__ import annotations

import base64
import io
import tempfile
from pathlib import Path

import mlflow.artifacts
import mlflow.pyfunc
import pandas as pd

BASE_KEY = "base"
LEDGER_KEY = "ledger"
REFERENCE_LIMIT = 3  # references per concept at generation time (load_reference_folder's default)


def checkpoint_key(task: int) -> str:
    return f"checkpoint_{task:02d}"


def references_key(task: int) -> str:
    return f"references_{task:02d}"


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


def serving_placement(config: dict):
    """Where a loaded version serves: `model_config` `device` / `precision` (mlflow.pyfunc.load_model(uri,
    model_config={"device": "cuda:1", "precision": "bf16"})), else the available device in fp32."""
    from types import SimpleNamespace

    from components.device import placement

    return placement(SimpleNamespace(device=config.get("device", "auto"), precision=config.get("precision", "fp32")))


class ErasedConceptError(RuntimeError):
    """A model version whose concept was erased: its files are gone and it must not serve."""


def load_version(uri: str, *, trust: bool = False, model_config: dict | None = None):
    """`mlflow.pyfunc.load_model(uri)`, but from a downloaded copy whose MLmodel, python_model.pkl, code/ and
    index were checked first (integrity.verify_package): MLflow unpickles the one and imports the other
    before any lfsd code runs, so the check must come before it. `trust`: load a version registered outside
    lfsd all the same (a person vouched for it); its content is still checked against its index."""
    from components.registry import integrity

    found = integrity.logged_model(uri)
    with tempfile.TemporaryDirectory(prefix="lfsd-load-") as tmp:
        location = found.artifact_location if found is not None else uri
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=tmp))
        integrity.verify_package(uri, local, dict(found.tags or {}) if found is not None else {}, trust)
        return mlflow.pyfunc.load_model(str(local), model_config=model_config)


class LfsdPyfunc(mlflow.pyfunc.PythonModel):
    """Holds no state when pickled; everything is rebuilt from the artifacts in `load_context`."""

    def load_context(self, context) -> None:
        import torch

        from components.lifelong import Ledger, LifelongModel
        from components.model.references import load_reference_folder
        from components.registry.integrity import verify_artifacts
        from components.registry.shared_artifacts import INDEX_KEY, fetch_shared, read_index
        from components.training.methods import uses_icgen

        arts = dict(context.artifacts)
        index = read_index(arts.get(INDEX_KEY))
        fetched: dict[str, str] = {}
        if index["shared"]:  # stored once in an earlier version: download them (kept alive with the model)
            self._shared_dir = tempfile.TemporaryDirectory(prefix="lfsd-shared-")
            fetched, missing = fetch_shared(index, Path(self._shared_dir.name))
            arts |= fetched
            if BASE_KEY in missing:
                raise FileNotFoundError(
                    f"this model version's base is {missing[BASE_KEY]}: the artifact store lost "
                    f"the version that stores it"
                )
        raw = Ledger.read(Path(arts[LEDGER_KEY]))
        here = lambda key: not key or (key in arts and Path(arts[key]).exists())
        gone = [e.name for e in raw.entries if not (here(e.checkpoint) and here(e.references))]
        if gone:  # deleted by an erasure (registry/erasure.py), or a damaged copy: never load a partial chain
            raise ErasedConceptError(
                f"this model version's files for concept(s) {', '.join(gone)} are gone (erased "
                f"on request, see the version's lfsd.erasure tag): it cannot be loaded; "
                f"load the version that replaced it"
            )
        # Every file as the index recorded it (the shared ones were checked as they were fetched; a legacy
        # index has no per-file hashes of the base: from_ledger checks its folder hash).
        legacy_base = (BASE_KEY,) if BASE_KEY not in index["files"] else ()
        verify_artifacts("this model version", index, arts, skip=(*fetched, *legacy_base))
        # The logged ledger names artifacts, not paths: map each key to where MLflow put it.
        ledger = raw.with_paths(lambda key: arts[key])
        # Serving never trains: fold the adapters as they are read, so loading and each step cost what the
        # base's do (the ledger stays, for lineage and `concepts`).
        # the base's files were just checked one by one against the index: not hashed a second time
        self.model = LifelongModel.from_ledger(
            ledger, base_dir=Path(arts[BASE_KEY]), fold=True, base_checked=not legacy_base and BASE_KEY not in fetched
        ).folded()
        self.icgen = uses_icgen(ledger.method, self.model.bundle.has_context_path)
        config = dict(context.model_config or {})  # params.yaml's sampling at logging time
        self.placement = serving_placement(config)
        self.model.bundle.place(self.placement)
        self.default_steps = int(config["steps"])
        self.guidance_scale = float(config["guidance_scale"])
        self.image_size = self.model.bundle.image_size
        self.references: dict[str, torch.Tensor] = {}
        if self.icgen:
            for entry in self.model.ledger.entries:
                self.references[entry.name] = load_reference_folder(entry.references, self.image_size, REFERENCE_LIMIT)

    def concepts(self) -> list[str]:
        return self.model.ledger.names()

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from components.model.pixels import to_uint8
        from components.model.sampling import generate

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
            out = generate(
                self.model.bundle,
                [m[1] for m in members],
                [m[3] for m in members],
                references=refs,
                steps=steps,
                guidance_scale=self.guidance_scale,
            )
            for m, arr in zip(members, to_uint8(out)):
                images[m[0]] = encode_png(arr)
        return pd.DataFrame({"image": images, "seed": [r[3] for r in rows]})
