"""Stage `pretrain_base`: train the text-to-image base with its In-Context Generation path.

The VAE is frozen (stage `pretrain_vae`); scenes and instance views are rendered and encoded once into
a latent pool. Each batch mixes text-to-image samples (caption, null context) with in-context samples:
a held-out view of a pre-training instance is denoised from its caption ("a star on a gray background",
which says nothing of its look) and the mean context embedding of 1-3 other views of it.
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

from components.config import load_params
from components.model.pixels import to_tensor
from components.world.scenes import instance_caption, render_view, sample_instance, sample_scene


@dataclass
class LatentPool:
    scene_latents: torch.Tensor  # (S, C, h, w) scaled
    scene_captions: list[str]
    view_latents: torch.Tensor  # (I, V, C, h, w) scaled
    view_pixels: torch.Tensor  # (I, V, 3, H, W) in [-1, 1], for the context encoder
    view_captions: list[list[str]]


@torch.no_grad()
def build_pool(bundle, rng: np.random.Generator, n_scenes: int, n_instances: int, views: int) -> LatentPool:
    def encode(images: np.ndarray) -> torch.Tensor:
        return torch.cat([bundle.encode_images(to_tensor(images[i : i + 512])) for i in range(0, len(images), 512)])

    scenes = [sample_scene(rng) for _ in range(n_scenes)]
    scene_latents = encode(np.stack([s.image for s in scenes]))
    pixels, captions = [], []
    for _ in range(n_instances):
        inst = sample_instance(rng, unseen=False)
        rendered = [render_view(inst, rng) for _ in range(views)]
        pixels.append(np.stack([img for img, _ in rendered]))
        captions.append([instance_caption(inst, bg) for _, bg in rendered])
    flat = np.concatenate(pixels)
    view_latents = encode(flat).view(n_instances, views, *scene_latents.shape[1:])
    view_pixels = to_tensor(flat).view(n_instances, views, *to_tensor(flat[:1]).shape[1:])
    return LatentPool(scene_latents, [s.caption for s in scenes], view_latents, view_pixels, captions)


def sample_batch(pool: LatentPool, rng: np.random.Generator, batch: int, context_fraction: float):
    """Latents, captions, reference pixels (B, 3, ...) and reference mask (B, 3)."""
    n_ctx = round(batch * context_fraction)
    n_txt = batch - n_ctx
    si = rng.integers(len(pool.scene_latents), size=n_txt)
    latents = [pool.scene_latents[si]]
    captions = [pool.scene_captions[i] for i in si]
    v = pool.view_latents.shape[1]
    refs = torch.zeros(batch, 3, *pool.view_pixels.shape[2:])
    mask = torch.zeros(batch, 3)
    ctx_latents = []
    for b in range(n_ctx):
        i = rng.integers(len(pool.view_latents))
        order = rng.permutation(v)
        target, others = order[0], order[1 : 1 + rng.integers(1, 4)]
        ctx_latents.append(pool.view_latents[i, target])
        captions.append(pool.view_captions[i][target])
        refs[n_txt + b, : len(others)] = pool.view_pixels[i, others]
        mask[n_txt + b, : len(others)] = 1.0
    if ctx_latents:
        latents.append(torch.stack(ctx_latents))
    return torch.cat(latents), captions, refs, mask


class Ema:
    """Exponential moving average of the trainable weights; the saved base is the EMA."""

    def __init__(self, params: list[torch.nn.Parameter], decay: float):
        self.params, self.decay = params, decay
        self.shadow = [p.detach().clone() for p in params]

    @torch.no_grad()
    def update(self, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1 - d)

    @torch.no_grad()
    def copy_to_model(self) -> None:
        for p, s in zip(self.params, self.shadow):
            p.copy_(s)


def main(vae_dir: Path, out: Path, steps: int | None) -> None:
    from diffusers import AutoencoderKL

    from components.model.context import context_parameters
    from components.model.losses import denoising_loss
    from components.model.pipeline import build_tiny, save

    params = load_params()
    cfg = params.pretrain_base
    steps = steps or cfg.steps
    torch.set_num_threads(cfg.threads)
    bundle = build_tiny(params.model, seed=params.world.seed)
    bundle.vae = AutoencoderKL.from_pretrained(vae_dir).eval().requires_grad_(False)
    rng = np.random.default_rng(params.world.seed + 4)
    start = time.time()
    pool = build_pool(bundle, rng, cfg.pool_scenes, cfg.pool_instances, cfg.views_per_instance)
    print(json.dumps({"pool_built_s": round(time.time() - start, 1)}), flush=True)

    modules = [bundle.unet, bundle.text_encoder, bundle.context_encoder]
    for m in modules:
        m.train()
    trainable = [p for m in modules for p in m.parameters()]
    opt = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=0.0)
    warm = cfg.warmup_steps
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s / steps, 1.0))))
    )
    ema = Ema(trainable, decay=0.999)
    n_ctx_params = sum(p.numel() for p in context_parameters(bundle.unet))
    print(
        json.dumps({"trainable_params": sum(p.numel() for p in trainable), "context_path_params": n_ctx_params}),
        flush=True,
    )
    losses = []
    train_start = time.time()
    for step in range(1, steps + 1):
        latents, captions, refs, mask = sample_batch(pool, rng, cfg.batch_size, cfg.context_fraction)
        b = latents.shape[0]
        drop_text = rng.random(b) < cfg.text_dropout
        captions = ["" if d else c for c, d in zip(captions, drop_text)]
        drop_ctx = torch.from_numpy(rng.random(b) < cfg.context_dropout)
        mask = mask * (~drop_ctx).float()[:, None]
        has_ctx = mask.sum(1) > 0
        context = torch.zeros(b, 1, params.model.context_embed_dim)
        if has_ctx.any():
            context[has_ctx] = bundle.context_encoder.embed_references(refs[has_ctx], mask[has_ctx])
        loss = denoising_loss(bundle, latents, captions, context)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        sched.step()
        ema.update(step)
        losses.append(loss.item())
        if step % 100 == 0 or step == steps:
            print(
                json.dumps(
                    {
                        "step": step,
                        "loss": round(float(np.mean(losses[-100:])), 5),
                        "s": round(time.time() - train_start, 1),
                    }
                ),
                flush=True,
            )
        if step % cfg.checkpoint_every == 0 or step == steps:
            snapshot = [p.detach().clone() for p in trainable]
            ema.copy_to_model()
            save(bundle, out, extra={"pretrain_step": step})
            with torch.no_grad():
                for p, s in zip(trainable, snapshot):
                    p.copy_(s)
    summary = {
        "steps": steps,
        "pool_seconds": round(train_start - start, 1),
        "train_seconds": round(time.time() - train_start, 1),
        "final_loss_mean_last_500": round(float(np.mean(losses[-500:])), 5),
    }
    (Path(out) / "training_summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--vae", type=Path, default=Path("models/vae"))
    ap.add_argument("--out", type=Path, default=Path("models/base"))
    ap.add_argument("--steps", type=int, default=None, help="override pretrain_base.steps (smoke runs)")
    a = ap.parse_args()
    main(a.vae, a.out, a.steps)
