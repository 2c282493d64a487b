"""Stage `pretrain_evaluator`: train the world's CLIP analogue and DINO analogue.

CLIP analogue: images against captions of random granularity ("a star", "a red star", "a red object",
full captions); a text counts as a positive for every image it correctly describes, so repeated
captions in a batch are not false negatives. DINO analogue: supervised contrastive loss over views of
pre-training instances (pose, size, position and background vary; identity does not).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from components.config import load_params
from components.evaluation.embedder import WorldEvaluator
from components.model.pixels import to_tensor
from components.world.scenes import render_view, sample_instance, sample_scene


def _describe(rng: np.random.Generator, attrs: dict[str, str]) -> tuple[str, dict[str, str]]:
    """A random partial caption and the attributes it commits to."""
    form = rng.integers(5)
    if form == 0:
        return f"a {attrs['cls']}", {"cls": attrs["cls"]}
    if form == 1:
        return f"a {attrs['colour']} object", {"colour": attrs["colour"]}
    if form == 2:
        return f"a {attrs['colour']} {attrs['cls']}", {"cls": attrs["cls"], "colour": attrs["colour"]}
    if form == 3:
        return f"a {attrs['cls']} on a {attrs['bg']} background", {"cls": attrs["cls"], "bg": attrs["bg"]}
    return f"a {attrs['colour']} {attrs['cls']} on a {attrs['bg']} background", dict(attrs)


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Blur some images and add a little noise: generated samples are softer than renders."""
    blur = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    pick = (torch.rand(x.shape[0], 1, 1, 1, generator=gen) < 0.3).float()
    x = pick * blur + (1 - pick) * x
    return x + 0.03 * torch.randn(x.shape, generator=gen)


@dataclass
class EvaluatorPool:
    """Pre-rendered training data: rendering costs more than a training step of this small net."""

    images: torch.Tensor  # (S, 3, H, W) scenes and instance views, captioned
    attrs: list[dict[str, str]]
    views: torch.Tensor  # (I, V, 3, H, W) views of pre-training instances


def build_pool(rng: np.random.Generator, n_images: int, n_instances: int, views: int) -> EvaluatorPool:
    images, attrs = [], []
    for _ in range(n_images):
        if rng.random() < 0.25:
            inst = sample_instance(rng, unseen=False)
            img, bg = render_view(inst, rng)
            attrs.append({"cls": inst.cls, "colour": inst.colour, "bg": bg})
        else:
            s = sample_scene(rng)
            img = s.image
            attrs.append({"cls": s.cls, "colour": s.colour, "bg": s.background})
        images.append(img)
    inst_views = []
    for _ in range(n_instances):
        inst = sample_instance(rng, unseen=False)
        inst_views.append(np.stack([render_view(inst, rng)[0] for _ in range(views)]))
    flat = to_tensor(np.concatenate(inst_views))
    return EvaluatorPool(to_tensor(np.stack(images)), attrs, flat.view(n_instances, views, *flat.shape[1:]))


def clip_batch(pool: EvaluatorPool, rng: np.random.Generator, n: int):
    """Images, one random partial caption each, and which captions describe which images."""
    idx = rng.integers(len(pool.attrs), size=n)
    attrs = [pool.attrs[i] for i in idx]
    texts, said = zip(*(_describe(rng, a) for a in attrs))
    match = torch.tensor([[all(a[k] == v for k, v in s.items()) for s in said] for a in attrs], dtype=torch.float32)
    return pool.images[idx], list(texts), match


def instance_batch(pool: EvaluatorPool, rng: np.random.Generator, n_instances: int, views: int):
    idx = rng.choice(len(pool.views), size=n_instances, replace=False)
    picks = [rng.choice(pool.views.shape[1], size=views, replace=False) for _ in idx]
    images = torch.cat([pool.views[i, p] for i, p in zip(idx, picks)])
    return images, torch.arange(n_instances).repeat_interleave(views)


def soft_clip_loss(img: torch.Tensor, txt: torch.Tensor, match: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    logits = scale.exp().clamp(max=100) * img @ txt.T
    t_i = match / match.sum(1, keepdim=True)
    t_t = match.T / match.T.sum(1, keepdim=True)
    return 0.5 * (-(t_i * logits.log_softmax(1)).sum(1).mean() - (t_t * logits.T.log_softmax(1)).sum(1).mean())


def supcon_loss(emb: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    sim = emb @ emb.T / temperature
    eye = torch.eye(len(labels), dtype=torch.bool)
    sim = sim.masked_fill(eye, -1e9)
    pos = (labels[:, None] == labels[None, :]) & ~eye
    log_prob = sim.log_softmax(1)
    return -(log_prob * pos).sum(1).div(pos.sum(1)).mean()


def main(out: Path) -> None:
    params = load_params()
    cfg = params.pretrain_evaluator
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(params.world.seed)
    rng = np.random.default_rng(params.world.seed + 2)
    gen = torch.Generator().manual_seed(params.world.seed + 3)
    model = WorldEvaluator(embed_dim=cfg.embed_dim).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s / cfg.steps, 1.0))))
    start = time.time()
    pool = build_pool(rng, cfg.pool_images, cfg.pool_instances, cfg.views_per_instance)
    print(json.dumps({"pool_built_s": round(time.time() - start, 1)}), flush=True)
    for step in range(1, cfg.steps + 1):
        x, texts, match = clip_batch(pool, rng, cfg.batch_size)
        l_clip = soft_clip_loss(model.clip_images(_augment(x, gen)), model.texts(texts), match, model.logit_scale)
        xi, labels = instance_batch(pool, rng, cfg.batch_size // 4, 4)
        l_inst = supcon_loss(model.instance_images(_augment(xi, gen)), labels)
        loss = l_clip + l_inst
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == cfg.steps:
            print(
                json.dumps(
                    {
                        "step": step,
                        "clip": round(l_clip.item(), 4),
                        "instance": round(l_inst.item(), 4),
                        "s": round(time.time() - start, 1),
                    }
                ),
                flush=True,
            )
    model.eval()
    model.save(out)
    summary = {
        "steps": cfg.steps,
        "seconds": round(time.time() - start, 1),
        "final_clip_loss": round(l_clip.item(), 4),
        "final_instance_loss": round(l_inst.item(), 4),
    }
    (out / "training_summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("models/evaluator"))
    main(ap.parse_args().out)
