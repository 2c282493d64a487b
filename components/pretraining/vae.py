"""Stage `pretrain_vae`: train the embedded world's AutoencoderKL (32x32 RGB <-> 8x8x4 latents).

Colour fidelity is what earlier attempts lost, so the loss is L1 + MSE on pixels with a tiny KL, and
the latent scaling factor is measured at the end the way Stable Diffusion's was (1 / std of latents).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from components.config import load_params
from components.model.pixels import to_tensor
from components.pretraining.data import mixed_images


def main(out: Path) -> None:
    params = load_params()
    cfg = params.pretrain_vae
    torch.set_num_threads(cfg.threads)
    from components.model.pipeline import build_tiny

    vae = build_tiny(params.model, seed=params.world.seed).vae.train()
    rng = np.random.default_rng(params.world.seed + 1)
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s / cfg.steps, 1.0))))
    start, log = time.time(), []
    for step in range(1, cfg.steps + 1):
        x = to_tensor(mixed_images(rng, cfg.batch_size))
        dist = vae.encode(x).latent_dist
        recon = vae.decode(dist.sample()).sample
        rec = (recon - x).abs().mean() + ((recon - x) ** 2).mean()
        kl = dist.kl().mean()
        loss = rec + cfg.kl_weight * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == cfg.steps:
            row = {
                "step": step,
                "rec": round(rec.item(), 5),
                "kl": round(kl.item(), 2),
                "s": round(time.time() - start, 1),
            }
            log.append(row)
            print(json.dumps(row), flush=True)
    vae.eval()
    with torch.no_grad():
        x = to_tensor(mixed_images(np.random.default_rng(10_001), 1024))
        z = vae.encode(x).latent_dist.mean
        err = (vae.decode(z).sample.clamp(-1, 1) - x).abs().mean().item() * 127.5
    vae.register_to_config(scaling_factor=float(1.0 / z.std()))
    out.mkdir(parents=True, exist_ok=True)
    vae.save_pretrained(out)
    summary = {
        "steps": cfg.steps,
        "seconds": round(time.time() - start, 1),
        "final_rec_loss": log[-1]["rec"],
        "heldout_mean_abs_error_0_255": round(err, 3),
        "scaling_factor": float(1.0 / z.std()),
    }
    (out / "training_summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("models/vae"))
    main(ap.parse_args().out)
