"""Before a concept is trained: how near it is to the concepts the chain already holds (issue 32 §3).

The new concept's validated shots, normalised as its dataset copy will be, are embedded by the
workspace's evaluator and compared (`components/evaluation/nearness.py`) with what the chain keeps of each
learned concept: its shot embeddings and file hashes, stored in the checkpoint of the task that learned
it. No earlier concept's photos are read.

- Most of the shots are one existing concept's photos again (the same files, or near-duplicates: thumbnails
  within nearness.duplicate_within): refused with the name it already has (ValidationError; nothing changed).
- Existing concepts with nearness >= nearness.warn_above: said on the terminal, kept in the checkpoint's
  report (the run's `lfsd.near` tag and the model card read it) and scored in full by this step's
  forgetting evaluation (`scoring.py`), not only when the bounded sample happens to pick them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import torch

from components.evaluation.nearness import Near, StoredConcept
from components.onboarding.dataset import ConceptSubmission, validated_bytes
from components.workspace.layout import Workspace


@dataclass(frozen=True)
class NearnessCheck:
    concept: StoredConcept  # the new concept as the chain will keep it
    evaluator_hash: str
    near: list[Near]  # every compared concept, nearest first
    not_compared: list[str]  # learned concepts the chain keeps no comparable embeddings of


def evaluator_hash(ws: Workspace) -> str:
    from components.checksums import file_digest

    return file_digest(ws.evaluator_dir / "model.safetensors")


def shot_images(size: int, sub: ConceptSubmission):
    """(N, size, size, 3) uint8: the submission's validated shots exactly as `load_reference_folder` will
    read the normalised copy (RGB, resized to the model's size)."""
    import numpy as np
    from PIL import Image

    from components.validation import normalise_image

    arrays = []
    for name, sha256 in sub.files:
        png = io.BytesIO()
        normalise_image(io.BytesIO(validated_bytes(sub.folder, name, sha256))).save(png, format="PNG")
        arrays.append(np.asarray(Image.open(png).convert("RGB").resize((size, size), Image.BICUBIC)))
    return np.stack(arrays)


def shot_embeddings(evaluator_dir: Path, images) -> torch.Tensor:
    """(N, E) evaluator embeddings of `shot_images` (in [-1, 1], as the evaluator reads references)."""
    from components.evaluation.embedder import load_evaluator

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    _, dino = load_evaluator(evaluator_dir)
    with torch.no_grad():
        return dino.embed_images(x)


def stored_concepts(ws: Workspace, evaluator: str) -> tuple[list[StoredConcept], list[str]]:
    """What the committed chain keeps of each learned concept; the names it keeps nothing comparable of."""
    from components.evaluation.nearness import load_shots

    ledger = ws.ledger()
    stored, missing = [], []
    for entry in ledger.entries if ledger is not None else []:
        c = load_shots(ws.root / entry.checkpoint, evaluator)
        (stored.append(c) if c is not None else missing.append(entry.name))
    return stored, missing


def check(ws: Workspace, sub: ConceptSubmission) -> NearnessCheck:
    """Compare the submission with the chain; ValidationError when it is an existing concept again."""
    from components.evaluation.nearness import compare, duplicate_of, thumbnails

    cfg = ws.params.nearness
    ev = evaluator_hash(ws)
    images = shot_images(ws.params.model.image_size, sub)
    emb, thumbs = shot_embeddings(ws.evaluator_dir, images), thumbnails(images)
    stored, missing = stored_concepts(ws, ev)
    hashes = tuple(h for _, h in sub.files)  # in the order of the embeddings
    near = compare(emb, thumbs, hashes, stored, cfg.duplicate_within)
    same = duplicate_of(near, len(sub.files))
    if same is not None:
        raise refusal(sub, same, cfg.duplicate_within)
    return NearnessCheck(StoredConcept(sub.name, sub.class_word, emb, hashes, thumbs), ev, near, missing)


def refusal(sub: ConceptSubmission, same: Near, duplicate_within: float):
    """The ValidationError for a concept that is a learned one again: each duplicate shot named."""
    from components.validation import Problem, ValidationError, ValidationReport, empty_manifest

    why = (
        f"is a photo of the learned concept {same.name!r} again (the same file, or a near-duplicate: thumbnail "
        f"within nearness.duplicate_within {duplicate_within}): {len(same.duplicates)} of {len(sub.files)} shots "
        f"are, so this concept is already learned as <{same.name}>; nothing was onboarded"
    )
    problems = [Problem(sub.files[i][0], why) for i in same.duplicates]
    return ValidationError(ValidationReport(Path(sub.folder), False, problems, empty_manifest()))


def message(result: NearnessCheck, warn_above: float, show: int) -> str | None:
    """The terminal's warning line, or None when no learned concept is near."""
    from components.evaluation.nearness import summary

    said = summary(result.near, warn_above, show)
    if not said:
        return None
    return (
        f"warning: {result.concept.name} is near {said} (nearness >= {warn_above}): similar concepts can bleed into"
        " each other; this step scores them in full"
    )


def keep(checkpoint: Path, result: NearnessCheck, warn_above: float) -> None:
    """Store the new concept's embeddings and the check's report in its checkpoint (before the commit)."""
    from components.evaluation.nearness import save_shots, write_report

    save_shots(checkpoint, result.concept, result.evaluator_hash)
    write_report(checkpoint, result.near, warn_above, result.not_compared)
