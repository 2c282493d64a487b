"""Batches of world images as tensors, for pre-training the VAE, the base and the evaluator."""

from __future__ import annotations

import numpy as np

from components.world.scenes import render_view, sample_instance, sample_scene


def mixed_images(rng: np.random.Generator, n: int, instance_share: float = 0.35) -> np.ndarray:
    """Generic scenes and pre-training instance views (never unseen instances)."""
    out = []
    for _ in range(n):
        if rng.random() < instance_share:
            out.append(render_view(sample_instance(rng, unseen=False), rng)[0])
        else:
            out.append(sample_scene(rng).image)
    return np.stack(out)
