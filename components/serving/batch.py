"""The requests Ray Serve merged (`@serve.batch`) drawn as denoising batches of one version.

The batching rule: a batch takes the serving version once; every request in it is checked against that
version (a refused one gets its own 4xx, the others still draw); the accepted requests are grouped by
(steps, guidance), the two settings one denoising loop shares, and each group is ONE `draw` over all its
images (prompts, negative prompts, seeds and references stay per image). Requests with the defaults all
land in one group, so the common case is one loop per batch.
"""

from __future__ import annotations

from components.serving.loaded import LoadedVersion, draw
from components.serving.request import BadRequest, GenerateRequest
from components.serving.version_checks import check_against, rows_for

MODEL_VERSION_HEADER = "X-LFSD-Model-Version"
CONCEPTS_HEADER = "X-LFSD-Concepts"


class DrawFailed(BadRequest):
    """The model failed on a batch (out of memory, ...): a 500 with one line for its requests."""

    def __init__(self, reason: str):
        super().__init__(reason, 500)


def answer(
    loaded: LoadedVersion, req: GenerateRequest, pngs: list[str], steps: int, guidance: float, batch_images: int
) -> dict:
    """The JSON of a drawn request: the images and the version and concepts that drew them, and how many images
    the denoising batch that drew them held (theirs and other requests')."""
    return {
        "model": loaded.model_name,
        "version": loaded.version,
        "concepts": loaded.concepts,
        "concept": req.concept,
        "images": pngs,
        "seeds": [req.seed + i for i in range(len(pngs))],
        "steps": steps,
        "guidance": guidance,
        "batch_images": batch_images,
    }


def headers(result: dict) -> dict[str, str]:
    return {MODEL_VERSION_HEADER: str(result["version"]), CONCEPTS_HEADER: ",".join(result["concepts"])}


def run_batch(loaded: LoadedVersion | None, reqs: list[GenerateRequest]) -> list[dict | BadRequest]:
    """One result per request, in order: its answer, or the BadRequest that refused it."""
    from components.registry.pyfunc import encode_png

    if loaded is None:
        return [BadRequest("no model version can serve now (see GET /health); try again shortly", 503)] * len(reqs)
    results: list[dict | BadRequest | None] = [None] * len(reqs)
    groups: dict[tuple[int, float], list[tuple[int, list]]] = {}
    for i, req in enumerate(reqs):
        try:
            check_against(req, loaded)
            rows, steps, guidance = rows_for(req, loaded)
        except BadRequest as e:
            results[i] = e
            continue
        groups.setdefault((steps, guidance), []).append((i, rows))
    for (steps, guidance), members in groups.items():
        try:
            images = draw(loaded, [r for _, rows in members for r in rows], steps, guidance)
        except Exception as e:  # one group failing must not take the server (or the other groups) down
            reason = DrawFailed(f"drawing failed: {type(e).__name__}: {str(e).strip().splitlines()[0][:200]}")
            for i, _ in members:
                results[i] = reason
            continue
        start = 0
        for i, rows in members:
            pngs = [encode_png(a) for a in images[start : start + len(rows)]]
            start += len(rows)
            results[i] = answer(loaded, reqs[i], pngs, steps, guidance, len(images))
    return results
