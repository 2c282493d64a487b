"""DDIM sampling with classifier-free guidance over text and visual context.

Guidance contrasts (prompt, context) with ("", null context), the pair the base was trained to drop.
Each sample's starting noise comes from its own seed, so the same seed gives the same image under
any model: that is what makes before/after comparisons in the forgetting protocol paired.
"""

from __future__ import annotations

import torch

from components.model.pipeline import DiffusionBundle, ddim_scheduler


def initial_latents(bundle: DiffusionBundle, seeds: list[int]) -> torch.Tensor:
    c = bundle.unet.config.in_channels
    s = bundle.unet.config.sample_size
    return torch.stack([torch.randn(c, s, s, generator=torch.Generator().manual_seed(int(sd))) for sd in seeds])


def context_embeddings(
    bundle: DiffusionBundle, references: torch.Tensor | None, batch: int, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """(B, R, 3, H, W) references -> (B, 1, E); None -> the null context (zeros)."""
    dim = bundle.context_encoder.config.embed_dim
    if references is None:
        return torch.zeros(batch, 1, dim)
    return bundle.context_encoder.embed_references(references, mask)


@torch.no_grad()
def generate(
    bundle: DiffusionBundle,
    prompts: list[str],
    seeds: list[int],
    *,
    references: torch.Tensor | None = None,
    reference_mask: torch.Tensor | None = None,
    steps: int = 30,
    guidance_scale: float = 4.0,
) -> torch.Tensor:
    """Prompts (B,) with per-sample seeds -> images (B, 3, H, W) in [-1, 1]."""
    if len(prompts) != len(seeds):
        raise ValueError("one seed per prompt")
    b = len(prompts)
    scheduler = ddim_scheduler(bundle.scheduler.config)
    scheduler.set_timesteps(steps)
    latents = initial_latents(bundle, seeds) * scheduler.init_noise_sigma
    text = bundle.encode_prompts(list(prompts) + [""] * b)
    ctx = context_embeddings(bundle, references, b, reference_mask)
    ctx = torch.cat([ctx, torch.zeros_like(ctx)])
    for t in scheduler.timesteps:
        model_in = scheduler.scale_model_input(torch.cat([latents, latents]), t)
        eps = bundle.unet(model_in, t, encoder_hidden_states=text, added_cond_kwargs={"image_embeds": [ctx]}).sample
        cond, uncond = eps.chunk(2)
        latents = scheduler.step(uncond + guidance_scale * (cond - uncond), t, latents).prev_sample
    return bundle.decode_latents(latents)
