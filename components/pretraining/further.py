"""Another base for the same world: an existing base trained further, from another seed, with stage
`pretrain_base`'s own recipe (`base.build_pool`, `base.sample_batch`, the denoising loss, text and context
dropout). Why: `lfsd migrate` needs a second base that differs measurably from the first and still draws
the world; this makes one in seconds to minutes (tests build a tiny one inside a fixture, docs/results.md a
real one), without committing another set of weights.

    python -m components.pretraining.further --base models/base --out /tmp/base-b --steps 200 --seed 7
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def train_further(base_dir: Path, out: Path, *, steps: int, seed: int, pool: int = 256, batch: int = 16) -> dict:
    """Load `base_dir`, train its UNet, text encoder and context path `steps` more steps (VAE frozen) on a
    fresh pool of `pool` scenes and `pool // 4` instances drawn with `seed`, save to `out`. Returns what was
    done (also in `out/lfsd_index.json` under `further_trained`)."""
    import numpy as np
    import torch

    from components.config import load_params
    from components.lifelong.ledger import folder_hash
    from components.model.losses import denoising_loss
    from components.model.pipeline import load, save
    from components.pretraining.base import build_pool, sample_batch

    cfg = load_params().pretrain_base
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    bundle = load(Path(base_dir))
    bundle.vae.eval().requires_grad_(False)
    with torch.no_grad():
        latent_pool = build_pool(bundle, rng, pool, max(pool // 4, 4), cfg.views_per_instance)
    modules = [bundle.unet, bundle.text_encoder, bundle.context_encoder]
    trainable = [p for m in modules for p in m.train().requires_grad_(True).parameters()]
    opt = torch.optim.AdamW(trainable, lr=cfg.lr * 0.25, weight_decay=0.0)
    start, losses = time.time(), []
    for _ in range(steps):
        latents, captions, refs, mask = sample_batch(latent_pool, rng, batch, cfg.context_fraction)
        b = latents.shape[0]
        captions = ["" if d else c for c, d in zip(captions, rng.random(b) < cfg.text_dropout)]
        mask = mask * torch.from_numpy(rng.random(b) >= cfg.context_dropout).float()[:, None]
        has_ctx = mask.sum(1) > 0
        context = torch.zeros(b, 1, bundle.context_encoder.config.embed_dim)
        if has_ctx.any():
            context[has_ctx] = bundle.context_encoder.embed_references(refs[has_ctx], mask[has_ctx])
        loss = denoising_loss(bundle, latents, captions, context)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        losses.append(loss.item())
    done = {
        "from_base_hash": folder_hash(Path(base_dir)),
        "steps": steps,
        "seed": seed,
        "pool_scenes": pool,
        "batch": batch,
        "seconds": round(time.time() - start, 1),
        "loss_last": round(float(np.mean(losses[-20:])), 5) if losses else None,
    }
    for m in modules:
        m.eval()
    save(bundle, Path(out), extra={"further_trained": done})
    return done


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=Path, default=Path("models/base"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--pool", type=int, default=2048, help="scenes in the fresh latent pool (instances: a quarter)")
    ap.add_argument("--batch", type=int, default=32)
    a = ap.parse_args()
    print(json.dumps(train_further(a.base, a.out, steps=a.steps, seed=a.seed, pool=a.pool, batch=a.batch)))
