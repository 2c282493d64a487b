"""Batches of world images as tensors, for pre-training the VAE, the base and the evaluator."""

from __future__ import annotations

import numpy as np
import torch

from components.world.scenes import render_view, sample_instance, sample_scene


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8."""
    return images.clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def mixed_images(rng: np.random.Generator, n: int, instance_share: float = 0.35) -> np.ndarray:
    """Generic scenes and pre-training instance views (never unseen instances)."""
    out = []
    for _ in range(n):
        if rng.random() < instance_share:
            out.append(render_view(sample_instance(rng, unseen=False), rng)[0])
        else:
            out.append(sample_scene(rng).image)
    return np.stack(out)
