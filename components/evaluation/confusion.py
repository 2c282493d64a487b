"""Concept confusion (issue 32 §2): how many of a concept's samples look more like another learned concept.

Fidelity (the forgetting protocol's A[k][j]) is the evaluator's instance-embedding cosine of a concept's
generated samples to the normalised mean embedding of its references (`reference_vector`). A drop in
fidelity does not say *why*; a concept that bleeds into a similar one keeps a high cosine to its own
references and gains a higher one to the other's. Confusion measures that directly, with the same
embeddings and the same reference vectors:

- confusion[i]: the share of concept i's samples whose cosine to some other learned concept's reference
  vector is higher than to its own (a tie is not confused);
- margin[i]: the mean over i's samples of (cosine to its own reference vector - the highest cosine to
  another's); negative when its samples sit nearer another concept. NaN when no other concept is learned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ConceptConfusion:
    confusion: float  # share of samples nearer another concept's references than to its own
    margin: float  # mean (own cosine - best other cosine) over samples; NaN with no other concept
    nearest: str | None  # the other concept its samples are nearest to on average (None: no other)


def reference_vector(ref_embeddings: torch.Tensor) -> torch.Tensor:
    """(M, E) embeddings of a concept's references -> (E,) unit vector: what fidelity is the cosine to."""
    return torch.nn.functional.normalize(torch.as_tensor(ref_embeddings).float().mean(0), dim=-1)


def concept_confusion(
    samples: dict[str, torch.Tensor], references: dict[str, torch.Tensor]
) -> dict[str, ConceptConfusion]:
    """Per concept of `samples` (name -> (N, E) evaluator embeddings of its generated samples, unit rows
    as the evaluator returns them): its confusion against every concept of `references` (name -> (M, E)
    embeddings of each learned concept's references; it must include every concept of `samples`)."""
    missing = [n for n in samples if n not in references]
    if missing:
        raise KeyError(f"no references for {missing}: confusion is measured against every learned concept")
    names = list(references)
    refs = torch.stack([reference_vector(references[n]) for n in names])  # (K, E)
    out = {}
    for name, emb in samples.items():
        sims = torch.as_tensor(emb).float() @ refs.T  # (N, K)
        i = names.index(name)
        own = sims[:, i]
        if len(names) == 1:
            out[name] = ConceptConfusion(0.0, math.nan, None)
            continue
        others = torch.cat([sims[:, :i], sims[:, i + 1 :]], dim=1)  # (N, K-1)
        other_names = names[:i] + names[i + 1 :]
        best_other = others.max(dim=1).values
        out[name] = ConceptConfusion(
            confusion=float((best_other > own).float().mean()),
            margin=float((own - best_other).mean()),
            nearest=other_names[int(others.mean(0).argmax())],
        )
    return out
