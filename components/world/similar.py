"""The similar-concepts stress sequence: concepts that share a look with an earlier one at a set rate.

Issue 32: lfs lost most of concept 1's fidelity at the steps that taught a *similar* concept (same class,
or the same pattern and pattern colour). In an ordinary sequence (`concepts.plan_concepts`) that happens
by chance a few times in 50 steps; here it is the rule, so the failure shows in 10-15 steps.

How a sequence is drawn (one numpy Generator, so a seed fixes it):
- concept 1 is an unseen instance drawn uniformly (`scenes.sample_instance`);
- each later concept, with probability `rate`, copies one attribute of one earlier concept: the earlier
  concept uniformly among those taught so far, the attribute uniformly among `ATTRIBUTES` (class; body
  colour; pattern *with* its pattern colour), every other attribute drawn uniformly among the unseen
  instances that keep it (so it shares the one attribute, and others only by chance);
- otherwise (probability 1 - rate) it is drawn like concept 1, independent of the earlier ones: at
  rate 0 the sequence shares attributes only by chance.
Instances never repeat. `SimilarSpec.shares` records the planned share: (earlier index, attribute).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from components.world.concepts import ConceptSpec, _name
from components.world.scenes import Instance, all_instances, sample_instance

ATTRIBUTES: tuple[str, ...] = ("class", "colour", "pattern")
DEFAULT_SIMILAR_RATE = 0.7  # the CLI's default; the fixed stress runs are listed in docs/similar.md


@dataclass(frozen=True)
class SimilarSpec(ConceptSpec):
    shares: tuple[int, str] | None = None  # (0-based index of the earlier concept, attribute); None: independent


def attribute_value(inst: Instance, attribute: str) -> tuple[str, ...]:
    """The value two instances must have in common to share `attribute` (pattern: pattern + its colour)."""
    if attribute == "class":
        return (inst.cls,)
    if attribute == "colour":
        return (inst.colour,)
    if attribute == "pattern":
        return (inst.pattern, inst.pattern_colour)
    raise ValueError(f"unknown attribute {attribute!r} (one of {ATTRIBUTES})")


def shared_attributes(a: Instance, b: Instance) -> list[str]:
    """The attributes of `ATTRIBUTES` that `a` and `b` have in common."""
    return [x for x in ATTRIBUTES if attribute_value(a, x) == attribute_value(b, x)]


def _like(rng: np.random.Generator, unseen: list[Instance], source: Instance, attribute: str, taken: set[str]):
    """An unseen instance, not taken yet, sharing `attribute` with `source`; None if none is left."""
    want = attribute_value(source, attribute)
    pool = [i for i in unseen if attribute_value(i, attribute) == want and i.key not in taken]
    return pool[int(rng.integers(len(pool)))] if pool else None


def plan_similar(n: int, seed: int, rate: float) -> list[SimilarSpec]:
    """n concepts, each after the first sharing one attribute with an earlier one with probability `rate`
    (module docstring). Deterministic for (n, seed, rate)."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate {rate}: must be within [0, 1]")
    rng = np.random.default_rng(seed)
    unseen = [i for i in all_instances() if i.unseen]
    specs: list[SimilarSpec] = []
    taken: set[str] = set()
    for k in range(n):
        inst, shares = None, None
        if k > 0 and rng.random() < rate:
            j, attribute = int(rng.integers(k)), ATTRIBUTES[int(rng.integers(len(ATTRIBUTES)))]
            inst = _like(rng, unseen, specs[j].instance, attribute, taken)
            shares = (j, attribute) if inst is not None else None
        while inst is None or inst.key in taken:
            inst = sample_instance(rng, unseen=True)
        taken.add(inst.key)
        specs.append(SimilarSpec(_name(rng, {s.name for s in specs}), inst.cls, inst, shares))
    return specs
