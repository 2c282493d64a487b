"""Pictures of a forgetting evaluation: the heatmap of A[k][j] and a grid of the last step's samples.
Used by the benchmark and by the pipeline (MLflow artifacts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

MAX_HEATMAP_INCHES = (12.0, 10.0)  # the figure's size at any k (width, height)
ANNOTATE_UP_TO = 12  # cells carry their value up to this many concepts; beyond, the colour says it
MAX_TICK_LABELS = 25


def save_heatmap(matrix: list[list[float]], concepts: list[str], title: str, out: Path) -> Path:
    """The k x k fidelity matrix as a picture of bounded size. Why bounded: sized per cell, the figure grew
    as k^2 (at k = 50: +397 MB of peak RSS in the onboarding process, 5.6 s and a 1.2 MB PNG in every MLflow
    run; at k = 1,000 it could not be drawn), so cells shrink once k passes a dozen, their numbers are left
    out and the axes label at most MAX_TICK_LABELS concepts. The numbers are in forgetting.json anyway."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.parent.mkdir(parents=True, exist_ok=True)
    a = np.array(matrix, dtype=float)
    rows, cols = a.shape
    size = (min(MAX_HEATMAP_INCHES[0], 1.6 + 0.7 * cols), min(MAX_HEATMAP_INCHES[1], 1.4 + 0.6 * rows))
    fig, ax = plt.subplots(figsize=size)
    im = ax.imshow(a, vmin=0, vmax=1, cmap="viridis", aspect="auto", interpolation="nearest")
    ax.set_xlabel("concept j")
    ax.set_ylabel("after task k")
    xs, ys = range(0, cols, -(-cols // MAX_TICK_LABELS)), range(0, rows, -(-rows // MAX_TICK_LABELS))
    ax.set_xticks(list(xs), [concepts[j][:6] for j in xs], rotation=45)
    ax.set_yticks(list(ys), [i + 1 for i in ys])
    if max(rows, cols) <= ANNOTATE_UP_TO:
        for (i, j), v in np.ndenumerate(a):
            if v == v:
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def save_samples(samples: dict[str, torch.Tensor], concepts: list[str], out: Path) -> Path:
    """One row per concept (in ledger order) of its generated images."""
    from components.model.pixels import to_uint8
    from components.visuals import save_grid

    images = np.concatenate([to_uint8(samples[name]) for name in concepts])
    return save_grid(images, out, cols=len(samples[concepts[0]]))
