"""The closed vocabulary of the embedded world: classes, colours, backgrounds, patterns, sizes.

Everything the captions can say lives here, so the world generator, the evaluator's zero-shot
prompts and the pre-training captions can never disagree.
"""

from __future__ import annotations

CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "star", "heart", "cross", "ring", "diamond")

# Saturated, well separated object colours (RGB 0-255).
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 30, 30),
    "orange": (255, 140, 0),
    "yellow": (245, 225, 20),
    "green": (30, 165, 45),
    "cyan": (20, 210, 225),
    "blue": (35, 60, 225),
    "purple": (135, 40, 200),
    "pink": (255, 125, 195),
}

# Backgrounds are kept apart from every object colour so colour never leaks into the scene.
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (242, 242, 242),
    "black": (18, 18, 18),
    "gray": (125, 125, 125),
    "brown": (105, 70, 40),
}

# Instance patterns: what makes one star look like *this* star and not another.
PATTERNS: tuple[str, ...] = ("stripes", "bands", "dots", "checks", "half", "spot")

SIZES: dict[str, tuple[float, float]] = {"small": (0.30, 0.40), "large": (0.55, 0.70)}

CLASS_INDEX = {name: i for i, name in enumerate(CLASSES)}
COLOUR_INDEX = {name: i for i, name in enumerate(COLOURS)}
BACKGROUND_INDEX = {name: i for i, name in enumerate(BACKGROUNDS)}


def caption(cls: str, colour: str | None, background: str, size: str | None = None) -> str:
    """Plain-English caption, e.g. 'a small red star on a blue background'."""
    words = [w for w in (size, colour, cls) if w]
    return f"a {' '.join(words)} on a {background} background"
