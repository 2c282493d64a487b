"""The evaluator: a CLIP analogue (image-text alignment) and a DINO analogue (instance identity).

Metric code only sees the two small protocols below, so a real CLIP or DINO loaded from a local
folder can replace the world-trained one without touching any metric.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from components.world.vocabulary import BACKGROUNDS, CLASSES, COLOURS, SIZES


class ImageTextEmbedder(Protocol):
    def embed_images(self, images: torch.Tensor) -> torch.Tensor: ...  # (N,3,H,W) in [-1,1] -> (N,E) unit
    def embed_texts(self, texts: list[str]) -> torch.Tensor: ...  # (N,) -> (N,E) unit


class ImageEmbedder(Protocol):
    def embed_images(self, images: torch.Tensor) -> torch.Tensor: ...


WORDS: tuple[str, ...] = ("<unk>", "a", "on", "background", "object", *CLASSES, *COLOURS, *BACKGROUNDS, *SIZES)
WORD_INDEX = {w: i for i, w in enumerate(WORDS)}


def tokenize(text: str) -> list[int]:
    """Bag of known words; placeholder tokens like <c1> and unknown words map to <unk>."""
    return [WORD_INDEX.get(w, 0) for w in re.findall(r"<[^>]*>|[a-z]+", text.lower())]


class ConvTrunk(nn.Module):
    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1),
            nn.BatchNorm2d(w),
            nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1),
            nn.BatchNorm2d(2 * w),
            nn.ReLU(),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1),
            nn.BatchNorm2d(2 * w),
            nn.ReLU(),
            nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1),
            nn.BatchNorm2d(4 * w),
            nn.ReLU(),
            nn.Conv2d(4 * w, 4 * w, 3, padding=1),
            nn.BatchNorm2d(4 * w),
            nn.ReLU(),
        )
        self.out_dim = 8 * w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.net(x)
        return torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)


class WorldEvaluator(nn.Module):
    """Two heads over one trunk: `clip` space shared with a bag-of-words text tower, and `instance` space."""

    def __init__(self, embed_dim: int = 64, width: int = 16):
        super().__init__()
        self.config = {"embed_dim": embed_dim, "width": width}
        self.trunk = ConvTrunk(width)
        self.clip_head = nn.Sequential(nn.Linear(self.trunk.out_dim, 256), nn.ReLU(), nn.Linear(256, embed_dim))
        self.instance_trunk = ConvTrunk(width)
        self.instance_head = nn.Sequential(
            nn.Linear(self.instance_trunk.out_dim, 256), nn.ReLU(), nn.Linear(256, embed_dim)
        )
        self.word_embeddings = nn.EmbeddingBag(len(WORDS), 128, mode="mean")
        self.text_head = nn.Sequential(nn.ReLU(), nn.Linear(128, embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(2.7))

    def clip_images(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.clip_head(self.trunk(images)), dim=-1)

    def instance_images(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.instance_head(self.instance_trunk(images)), dim=-1)

    def texts(self, texts: list[str]) -> torch.Tensor:
        ids = [tokenize(t) or [0] for t in texts]
        flat = torch.tensor([i for seq in ids for i in seq])
        offsets = torch.tensor([0] + [len(s) for s in ids[:-1]]).cumsum(0)
        return F.normalize(self.text_head(self.word_embeddings(flat, offsets)), dim=-1)

    def save(self, out: Path) -> None:
        from safetensors.torch import save_file

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, out / "model.safetensors")
        (out / "config.json").write_text(json.dumps(self.config, indent=2))

    @classmethod
    def load(cls, path: Path) -> WorldEvaluator:
        from safetensors.torch import load_file

        path = Path(path)
        model = cls(**json.loads((path / "config.json").read_text()))
        model.load_state_dict(load_file(path / "model.safetensors"))
        return model.eval()


class ClipAnalogue:
    """`ImageTextEmbedder` view of the world evaluator."""

    def __init__(self, model: WorldEvaluator):
        self.model = model

    @torch.no_grad()
    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.clip_images(_here(self.model, images))

    @torch.no_grad()
    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        return self.model.texts(texts)


class DinoAnalogue:
    """`ImageEmbedder` view of the world evaluator's instance space."""

    def __init__(self, model: WorldEvaluator):
        self.model = model

    @torch.no_grad()
    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.instance_images(_here(self.model, images))


def _here(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Images drawn on any device or precision, as the evaluator (small, on the CPU, fp32) reads them: one
    copy per scored batch (a no-op for CPU fp32 images)."""
    p = next(model.parameters())
    return images.to(p.device, p.dtype)


def load_evaluator(path: Path) -> tuple[ClipAnalogue, DinoAnalogue]:
    model = WorldEvaluator.load(path)
    return ClipAnalogue(model), DinoAnalogue(model)
