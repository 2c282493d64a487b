"""One registered version held in memory to serve, and the one denoising batch it draws.

A version is loaded the way every lfsd command loads one (`registry.pyfunc.load_version`: its package
checked against its index before MLflow unpickles or imports anything, then `LfsdPyfunc.load_context`:
every artifact file checked, the chain rebuilt and folded, placed where `runtime` says). `draw` walks the
one sampling loop (`model.sampling`) over rows of several requests at once: each row keeps its own prompt,
negative prompt, seed and references; steps and guidance are the batch's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LoadedVersion:
    """A version ready to serve. Never changed after it is built: a swap replaces the whole object."""

    model_name: str
    version: str
    pyfunc: object  # the LfsdPyfunc whose load_context ran (model, references, defaults)
    erased: tuple[str, ...] = ()  # concepts erased from any version of the model (for the refusal's wording)
    loaded_at: float = field(default_factory=time.time)

    @property
    def concepts(self) -> list[str]:
        return list(self.pyfunc.concepts())

    @property
    def bundle(self):
        return self.pyfunc.model.bundle

    def describe(self) -> dict:
        """What /version says about it."""
        p = self.pyfunc
        return {
            "model": self.model_name,
            "version": self.version,
            "concepts": self.concepts,
            "erased": list(self.erased),
            "image_size": int(p.image_size),
            "default_steps": int(p.default_steps),
            "guidance": float(p.guidance_scale),
            "icgen": bool(p.icgen),
            "loaded_at": self.loaded_at,
        }


def load(model_name: str, version: str, placement, erased: tuple[str, ...] = ()) -> LoadedVersion:
    """models:/NAME/VERSION (a number, never the alias: the alias may move while it downloads), checked and
    placed. Raises what `load_version` raises: IntegrityError, ErasedConceptError (its files are gone)."""
    import sys

    from components.registry.pyfunc import load_version

    where = {"device": str(placement.device), "precision": placement.precision}
    before = set(sys.path)
    try:
        model = load_version(f"models:/{model_name}/{version}", model_config=where)
    finally:  # MLflow prepends the package's code/ (a temp folder, deleted after the load) at every load
        sys.path[:] = [p for p in sys.path if p in before]
    return LoadedVersion(model_name, str(version), model.unwrap_python_model(), tuple(erased))


@dataclass(frozen=True)
class Row:
    """One image to draw: a request of n images is n rows (seed, seed + 1, ...)."""

    prompt: str
    negative_prompt: str
    seed: int
    references: object | None  # (R, 3, H, W) in [-1, 1], or None: the null context


def draw(loaded: LoadedVersion, rows: list[Row], steps: int, guidance: float):
    """Every row in one denoising batch -> (B, H, W, 3) uint8. Each row's visual context is embedded on its
    own (rows carry different numbers of references), then the batch runs the UNet together."""
    import torch

    from components.model.pixels import to_uint8
    from components.model.sampling import context_embeddings, denoise, initial_latents

    bundle = loaded.bundle
    with torch.no_grad(), bundle.autocast():
        ctx = torch.cat(
            [context_embeddings(bundle, None if r.references is None else r.references.unsqueeze(0), 1) for r in rows]
        )
        noise = initial_latents(bundle, [r.seed for r in rows])
        latents = denoise(
            bundle,
            noise,
            [r.prompt for r in rows],
            ctx,
            steps=steps,
            guidance_scale=guidance,
            negative_prompts=[r.negative_prompt for r in rows],
        )
        images = bundle.decode_latents(latents).float().cpu()
    return to_uint8(images)
