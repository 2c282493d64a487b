"""Nearness of a new concept to the concepts a chain already holds (issue 32 §3), from embeddings only.

A concept is represented as fidelity and confusion see it: the evaluator's DINO-analogue embeddings of
its shots, whose normalised mean is its reference vector (`confusion.reference_vector`). Two numbers
come out of a comparison:

- **nearness** to each existing concept: the cosine of the two reference vectors. The 50-concept runs
  measured what nearness predicted a drop of an earlier concept's fidelity (docs/similar.md,
  `benchmarks/nearness_threshold.py`); above `nearness.warn_above` the onboarding warns and the gate scores
  that concept in full;
- **duplicate shots**: a new shot that is one of an existing concept's photos again: a byte-identical file
  (same sha256), or a near-duplicate (the same photo re-encoded or resized: its signature, luma 8x8 and
  chroma 4x4 of the normalised shot, within `nearness.duplicate_within` mean absolute difference of a
  stored one's).
  When most of the new shots are duplicates of one existing concept, the concept is that one again and is
  refused. Why thumbnails and not the embeddings: over the world's whole unseen instance space the
  evaluator gives two *different* objects of the same colours a shot cosine up to 0.993 (a red-half-yellow
  triangle against the diamond), above what another view of one object gets (0.907); the signatures keep
  a 2x gap (the photos re-encoded <= 1.13, different objects >= 2.33; `benchmarks/duplicate_threshold.py`).
  Another photo of a learned object is not refused: nearness says how near it is.

Nothing here reads an earlier concept's photos: the chain stores each concept's shot embeddings,
thumbnails and file hashes (`onboarding/nearness_check.py`), and this module compares tensors.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from components.evaluation.confusion import reference_vector

THUMBNAIL = 8  # pixels a side of the luma thumbnail a near-duplicate is judged on (chroma: half that)


@dataclass(frozen=True)
class StoredConcept:
    """What the chain keeps of one learned concept for this comparison."""

    name: str
    class_word: str
    embeddings: torch.Tensor  # (M, E) unit rows: its shots, embedded by the evaluator
    sha256: tuple[str, ...]  # its shots' file hashes (the normalised dataset copy)
    thumbnails: torch.Tensor | None = None  # (M, 96) uint8 (`thumbnails`); None: kept before they were


@dataclass(frozen=True)
class Near:
    name: str
    class_word: str
    nearness: float  # cosine of the reference vectors
    duplicates: tuple[int, ...]  # positions of the new shots that are one of its photos again (bytes or thumbnail)


def nearness_matrix(embeddings: list[torch.Tensor]) -> torch.Tensor:
    """(K, K) cosines of the reference vectors of K concepts' shot embeddings."""
    refs = torch.stack([reference_vector(e) for e in embeddings])
    return refs @ refs.T


def thumbnails(images: np.ndarray) -> torch.Tensor:
    """(N, 96) uint8 signatures of (N, H, W, 3) uint8 shots: the luma box-filtered to 8x8 and the two chroma
    planes to 4x4 (YCbCr, as JPEG subsamples colour), so a re-encode moves it little and two scenes a lot."""
    from PIL import Image

    out = []
    for im in images:
        ycc = Image.fromarray(im).convert("YCbCr")
        luma = np.asarray(ycc.resize((THUMBNAIL, THUMBNAIL), Image.BOX))[..., 0]
        chroma = np.asarray(ycc.resize((THUMBNAIL // 2, THUMBNAIL // 2), Image.BOX))[..., 1:]
        out.append(np.concatenate([luma.ravel(), chroma.transpose(2, 0, 1).ravel()]))
    return torch.from_numpy(np.stack(out))


def thumbnail_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, M) mean absolute difference (0-255) between N and M signatures."""
    x, y = a.flatten(1).float(), b.flatten(1).float()
    return torch.cdist(x, y, p=1) / x.shape[1]


def compare(
    embeddings: torch.Tensor,
    thumbs: torch.Tensor,
    sha256: tuple[str, ...],
    stored: list[StoredConcept],
    duplicate_within: float,
) -> list[Near]:
    """The new concept (its shots' embeddings, thumbnails and file hashes) against every stored concept,
    nearest first."""
    ref = reference_vector(embeddings)
    out = []
    for c in stored:
        theirs = set(c.sha256)
        same_bytes = {i for i, h in enumerate(sha256) if h in theirs}
        same_look = set()
        if c.thumbnails is not None:
            dist = thumbnail_distance(thumbs, c.thumbnails)  # (N, M)
            same_look = {i for i in range(dist.shape[0]) if float(dist[i].min()) <= duplicate_within}
        nearness = float(ref @ reference_vector(c.embeddings))
        out.append(Near(c.name, c.class_word, round(nearness, 4), tuple(sorted(same_bytes | same_look))))
    return sorted(out, key=lambda n: -n.nearness)


def duplicate_of(near: list[Near], shots: int) -> Near | None:
    """The existing concept the new one is a copy of: more than half of its shots are duplicates."""
    copies = [n for n in near if len(n.duplicates) * 2 > shots]
    return max(copies, key=lambda n: len(n.duplicates)) if copies else None


def summary(near: list[Near], warn_above: float, show: int = 3) -> str:
    """`near <xubyzo>: 0.91, <kazoxu>: 0.88` for the concepts above the bound (empty when none)."""
    above = [n for n in near if n.nearness >= warn_above][:show]
    return ", ".join(f"<{n.name}>: {n.nearness:.2f}" for n in above)


# What the chain keeps per concept, in the checkpoint of the task that learned it (versioned with it).
SHOTS_FILE = "shots_embedded.safetensors"  # the concept's shot embeddings + name, class word, file hashes
REPORT_FILE = "nearness.json"  # what the check found when the concept arrived (the card and the gate read it)


def save_shots(checkpoint: Path, concept: StoredConcept, evaluator_hash: str) -> None:
    from safetensors.torch import save_file

    meta = {
        "name": concept.name,
        "class_word": concept.class_word,
        "sha256": json.dumps(list(concept.sha256)),
        "evaluator": evaluator_hash,
    }
    tensors = {"embeddings": concept.embeddings.contiguous().float()}
    if concept.thumbnails is not None:
        tensors["thumbnails"] = concept.thumbnails.contiguous()
    save_file(tensors, str(Path(checkpoint) / SHOTS_FILE), meta)


def load_shots(checkpoint: Path, evaluator_hash: str) -> StoredConcept | None:
    """The stored concept, or None when the checkpoint has none (learned before this check existed, or
    relearned after an erasure) or it was embedded by another evaluator (not comparable)."""
    from safetensors import safe_open

    path = Path(checkpoint) / SHOTS_FILE
    if not path.is_file():
        return None
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        if meta.get("evaluator") != evaluator_hash:
            return None
        emb = f.get_tensor("embeddings")
        thumbs = f.get_tensor("thumbnails") if "thumbnails" in set(f.keys()) else None
    return StoredConcept(meta["name"], meta["class_word"], emb, tuple(json.loads(meta["sha256"])), thumbs)


def write_report(checkpoint: Path, near: list[Near], warn_above: float, not_compared: list[str]) -> None:
    report = {
        "warn_above": warn_above,
        "near": [dataclasses.asdict(n) for n in near],
        "warned": [n.name for n in near if n.nearness >= warn_above],
        "not_compared": not_compared,
        "summary": summary(near, warn_above),
    }
    (Path(checkpoint) / REPORT_FILE).write_text(json.dumps(report, indent=1) + "\n")


def read_report(checkpoint: Path) -> dict:
    """The check's report for the task of `checkpoint` ({} when it has none)."""
    path = Path(checkpoint) / REPORT_FILE
    return json.loads(path.read_text()) if path.is_file() else {}
