"""Sampling the world: generic captioned scenes and persistent instances seen from many views.

All randomness comes from a numpy Generator passed in, so every dataset is a pure function of a seed.
Instances are split by a hash of their identity into a pre-training set and an unseen set: concepts
for customisation and the in-context evaluation only ever use unseen instances.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from components.world.render import Pose, render
from components.world.vocabulary import BACKGROUNDS, CLASSES, COLOURS, PATTERNS, SIZES, caption

UNSEEN_FRACTION = 0.25


@dataclass(frozen=True)
class Scene:
    """One generic captioned image."""

    image: np.ndarray  # (32, 32, 3) uint8
    caption: str
    cls: str
    colour: str
    background: str


@dataclass(frozen=True)
class Instance:
    """An object with a persistent appearance: class, body colour, pattern and pattern colour."""

    cls: str
    colour: str
    pattern: str
    pattern_colour: str

    @property
    def key(self) -> str:
        return f"{self.cls}-{self.colour}-{self.pattern}-{self.pattern_colour}"

    @property
    def unseen(self) -> bool:
        """True for the held-out quarter of instance space (never used in pre-training)."""
        digest = hashlib.sha256(self.key.encode()).digest()
        return digest[0] / 256.0 < UNSEEN_FRACTION


def random_pose(rng: np.random.Generator, size: str) -> Pose:
    lo, hi = SIZES[size]
    scale = float(rng.uniform(lo, hi))
    margin = 1.0 - scale * 0.95
    return Pose(
        cx=float(rng.uniform(-margin, margin)),
        cy=float(rng.uniform(-margin, margin)),
        scale=scale,
        angle=float(rng.uniform(-0.35, 0.35)),
    )


def sample_scene(rng: np.random.Generator, *, size_word_prob: float = 0.5) -> Scene:
    """A solid-coloured object of a generic class, with its caption."""
    cls = CLASSES[rng.integers(len(CLASSES))]
    colour = list(COLOURS)[rng.integers(len(COLOURS))]
    background = list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
    size = list(SIZES)[rng.integers(len(SIZES))]
    image = render(cls, colour, background, random_pose(rng, size))
    said_size = size if rng.random() < size_word_prob else None
    return Scene(image, caption(cls, colour, background, said_size), cls, colour, background)


def all_instances() -> list[Instance]:
    colours = list(COLOURS)
    return [
        Instance(c, body, p, pc) for c in CLASSES for body in colours for p in PATTERNS for pc in colours if pc != body
    ]


def sample_instance(rng: np.random.Generator, *, unseen: bool, cls: str | None = None) -> Instance:
    """Draw an instance from the pre-training split or from the unseen split."""
    while True:
        inst = Instance(
            cls or CLASSES[rng.integers(len(CLASSES))],
            list(COLOURS)[rng.integers(len(COLOURS))],
            PATTERNS[rng.integers(len(PATTERNS))],
            list(COLOURS)[rng.integers(len(COLOURS))],
        )
        if inst.pattern_colour != inst.colour and inst.unseen == unseen:
            return inst


def render_view(inst: Instance, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """One view of an instance: new pose, size, position and background. Returns (image, background)."""
    background = list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
    lo, hi = 0.5, 0.75  # instances are shown large enough for their pattern to read
    scale = float(rng.uniform(lo, hi))
    margin = 1.0 - scale * 0.95
    pose = Pose(
        cx=float(rng.uniform(-margin, margin)),
        cy=float(rng.uniform(-margin, margin)),
        scale=scale,
        angle=float(rng.uniform(-0.35, 0.35)),
    )
    image = render(inst.cls, inst.colour, background, pose, inst.pattern, inst.pattern_colour)
    return image, background


def instance_caption(inst: Instance, background: str) -> str:
    """Caption of an instance view: class and background only; the look comes from context or token."""
    return caption(inst.cls, None, background)
