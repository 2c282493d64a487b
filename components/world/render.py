"""Rasterise world objects: analytic shape masks in object coordinates, supersampled to 32x32.

Masks are evaluated in the object's own frame (after rotation and scaling), so an instance's
pattern moves and turns with it: its appearance persists across poses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from components.world.vocabulary import BACKGROUNDS, COLOURS

IMAGE_SIZE = 32
SUPERSAMPLE = 3


@dataclass(frozen=True)
class Pose:
    """Where and how an object sits in the frame. Coordinates are in [-1, 1]."""

    cx: float
    cy: float
    scale: float
    angle: float  # radians


def _grid() -> tuple[np.ndarray, np.ndarray]:
    n = IMAGE_SIZE * SUPERSAMPLE
    c = (np.arange(n) + 0.5) / n * 2.0 - 1.0
    return np.meshgrid(c, c)  # (x, y), y grows downwards


_GX, _GY = _grid()


def object_coords(pose: Pose) -> tuple[np.ndarray, np.ndarray]:
    """Map image coordinates into the object's unit frame."""
    dx, dy = _GX - pose.cx, _GY - pose.cy
    ca, sa = np.cos(pose.angle), np.sin(pose.angle)
    u = (ca * dx + sa * dy) / pose.scale
    v = (-sa * dx + ca * dy) / pose.scale
    return u, v


def shape_mask(cls: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask of a class's silhouette in object coordinates (roughly the unit disc)."""
    r = np.hypot(u, v)
    if cls == "circle":
        return r < 0.85
    if cls == "ring":
        return (r < 0.95) & (r > 0.55)
    if cls == "square":
        return np.maximum(np.abs(u), np.abs(v)) < 0.72
    if cls == "diamond":
        return np.abs(u) * 0.8 + np.abs(v) < 0.98
    if cls == "cross":
        return ((np.abs(u) < 0.3) & (np.abs(v) < 0.92)) | ((np.abs(v) < 0.3) & (np.abs(u) < 0.92))
    if cls == "triangle":
        # Apex up (v = -1 is the top of the frame).
        return (v < 0.55) & (v > -1.0 + 1.8 * np.abs(u))
    if cls == "star":
        theta = np.arctan2(u, -v)  # 0 at the top tip
        phase = (theta * 5.0 / (2 * np.pi)) % 1.0
        tri = np.abs(phase - 0.5) * 2.0  # 1 at tips, 0 between
        return r < 0.42 + 0.58 * tri**2
    if cls == "heart":
        x, y = u * 1.2, -v * 1.2 + 0.15
        return (x**2 + y**2 - 1.0) ** 3 - x**2 * y**3 < 0
    raise ValueError(f"unknown class {cls!r}")


def pattern_mask(pattern: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Where an instance's second colour shows, in object coordinates."""
    if pattern == "stripes":
        return np.sin(u * 2 * np.pi / 0.55) > 0
    if pattern == "bands":
        return np.sin(v * 2 * np.pi / 0.55) > 0
    if pattern == "dots":
        return (np.hypot((u + 10) % 0.6 - 0.3, (v + 10) % 0.6 - 0.3)) < 0.16
    if pattern == "checks":
        return ((np.floor((u + 10) / 0.45) + np.floor((v + 10) / 0.45)) % 2) == 0
    if pattern == "half":
        return u > 0
    if pattern == "spot":
        return np.hypot(u - 0.25, v + 0.25) < 0.38
    if pattern == "solid":
        return np.zeros_like(u, dtype=bool)
    raise ValueError(f"unknown pattern {pattern!r}")


def _downsample(img: np.ndarray) -> np.ndarray:
    n = IMAGE_SIZE
    return img.reshape(n, SUPERSAMPLE, n, SUPERSAMPLE, 3).mean(axis=(1, 3))


def render(
    cls: str,
    colour: str,
    background: str,
    pose: Pose,
    pattern: str = "solid",
    pattern_colour: str | None = None,
) -> np.ndarray:
    """Render one object as a (32, 32, 3) uint8 image."""
    u, v = object_coords(pose)
    body = shape_mask(cls, u, v)
    img = np.empty(body.shape + (3,), dtype=np.float32)
    img[:] = BACKGROUNDS[background]
    img[body] = COLOURS[colour]
    if pattern != "solid":
        if pattern_colour is None:
            raise ValueError("a patterned object needs a pattern colour")
        img[body & pattern_mask(pattern, u, v)] = COLOURS[pattern_colour]
    return np.clip(np.rint(_downsample(img)), 0, 255).astype(np.uint8)
