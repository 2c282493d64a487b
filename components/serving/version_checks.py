"""A request checked against the version that will draw it, and turned into that version's rows.

Why here and not in `request.py`: what a request may name depends on the version that serves it (its
concepts, the concepts erased from the model, its tokenizer's length, its image size, whether it draws
with references), and the version can change between two requests. So these checks run against the very
version object the batch captured: a request is refused, or drawn, by one version, never judged by one
and drawn by another.
"""

from __future__ import annotations

import re

from components.serving.loaded import LoadedVersion, Row
from components.serving.request import BadRequest, GenerateRequest, decode_references

TOKEN = re.compile(r"<([^<>\s]+)>")  # how a learned concept is written in a prompt (ledger entry token)


def _known(name: str, loaded: LoadedVersion, what: str) -> None:
    if name in loaded.concepts:
        return
    if name in loaded.erased:
        raise BadRequest(f"{what} {name!r} was erased from {loaded.model_name}: no version serves it any more")
    knows = ", ".join(loaded.concepts) or "no concept"
    raise BadRequest(f"{what} {name!r} is not a concept of version {loaded.version} (it knows {knows})")


def _fits_tokenizer(text: str, loaded: LoadedVersion, what: str) -> None:
    tokenizer = loaded.bundle.tokenizer
    n, most = len(tokenizer(text).input_ids), int(tokenizer.model_max_length)
    if n > most:
        raise BadRequest(f"{what} is {n} tokens; version {loaded.version}'s tokenizer takes at most {most}")


def check_against(req: GenerateRequest, loaded: LoadedVersion) -> None:
    """Refuse (BadRequest) what this version cannot draw as asked."""
    if req.concept is not None:
        _known(req.concept, loaded, "concept")
    for text, what in ((req.prompt, "prompt"), (req.negative_prompt, "negative_prompt")):
        for token in dict.fromkeys(TOKEN.findall(text)):
            _known(token, loaded, f"{what} token")
        _fits_tokenizer(text, loaded, what)
    size = int(loaded.pyfunc.image_size)
    if req.size is not None and req.size != size:
        raise BadRequest(f"size {req.size}: version {loaded.version} draws {size} x {size} pixels only")
    if req.references and not loaded.pyfunc.icgen:
        raise BadRequest(f"references: version {loaded.version} does not draw with reference images (no ICGen)")


def rows_for(req: GenerateRequest, loaded: LoadedVersion) -> tuple[list[Row], int, float]:
    """(rows, steps, guidance) of a request this version accepts (`check_against` first)."""
    p = loaded.pyfunc
    refs = None
    if req.references:
        refs = decode_references(req.references, int(p.image_size))
    elif req.concept is not None and p.icgen:
        refs = p.references[req.concept]
    rows = [Row(req.prompt, req.negative_prompt, req.seed + i, refs) for i in range(req.num_images)]
    steps = int(req.steps if req.steps is not None else p.default_steps)
    guidance = float(req.guidance if req.guidance is not None else p.guidance_scale)
    return rows, steps, guidance
