"""Concept folders: K shots of one unseen instance plus a `concept.yaml` (name, class word).

This is the format customers deliver, and the format the pipeline onboards. Several concepts in a
generated sequence share a class on purpose: that is where relevant-concepts forgetting shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from components.world.scenes import Instance, render_view, sample_instance
from components.world.vocabulary import CLASSES

_SYLLABLES = ("ka", "mi", "zo", "ru", "te", "lo", "vi", "na", "pe", "su", "do", "ri", "fa", "ko", "by", "xu")


@dataclass(frozen=True)
class ConceptSpec:
    name: str
    class_word: str
    instance: Instance


def _name(rng: np.random.Generator, taken: set[str]) -> str:
    while True:
        name = "".join(_SYLLABLES[i] for i in rng.integers(len(_SYLLABLES), size=3))
        if name not in taken:
            return name


def plan_concepts(n: int, seed: int) -> list[ConceptSpec]:
    """n distinct unseen instances drawn over ceil(n / 2) classes, so classes repeat."""
    rng = np.random.default_rng(seed)
    classes = list(rng.choice(CLASSES, size=max(1, min((n + 1) // 2, len(CLASSES))), replace=False))
    order = [classes[i % len(classes)] for i in range(n)]
    rng.shuffle(order)
    specs: list[ConceptSpec] = []
    seen: set[str] = set()
    for cls in order:
        while True:
            inst = sample_instance(rng, unseen=True, cls=str(cls))
            if inst.key not in seen:
                break
        seen.add(inst.key)
        specs.append(ConceptSpec(_name(rng, {s.name for s in specs}), str(cls), inst))
    return specs


def render_shots(instance: Instance, shots: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [render_view(instance, rng)[0] for _ in range(shots)]


def write_concepts(out: Path, n: int, shots: int, seed: int, specs: list[ConceptSpec] | None = None) -> list[Path]:
    """Write `out/NN-name/` folders; the two-digit prefix is the arrival order. `specs`: a sequence planned
    elsewhere (e.g. `similar.plan_similar`), else `plan_concepts(n, seed)`; shots are drawn from `seed`."""
    out = Path(out)
    folders = []
    for i, spec in enumerate(plan_concepts(n, seed) if specs is None else specs):
        folder = out / f"{i:02d}-{spec.name}"
        folder.mkdir(parents=True, exist_ok=True)
        for j, img in enumerate(render_shots(spec.instance, shots, seed * 1000 + i)):
            Image.fromarray(img).save(folder / f"{j:02d}.png")
        meta = {"name": spec.name, "class_word": spec.class_word, "world_instance": spec.instance.key}
        (folder / "concept.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
        folders.append(folder)
    return folders
