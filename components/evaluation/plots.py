"""Pictures of a forgetting evaluation: the heatmap of A[k][j] and a grid of the last step's samples.
Used by the benchmark and by the pipeline (MLflow artifacts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def save_heatmap(matrix: list[list[float]], concepts: list[str], title: str, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.parent.mkdir(parents=True, exist_ok=True)
    a = np.array(matrix, dtype=float)
    fig, ax = plt.subplots(figsize=(1.6 + 0.7 * a.shape[1], 1.4 + 0.6 * a.shape[0]))
    im = ax.imshow(a, vmin=0, vmax=1, cmap="viridis")
    ax.set_xlabel("concept j")
    ax.set_ylabel("after task k")
    ax.set_xticks(range(a.shape[1]), [n[:6] for n in concepts], rotation=45)
    ax.set_yticks(range(a.shape[0]), range(1, a.shape[0] + 1))
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
    from components.model.images import to_uint8
    from components.visuals import save_grid

    images = np.concatenate([to_uint8(samples[name]) for name in concepts])
    return save_grid(images, out, cols=len(samples[concepts[0]]))
