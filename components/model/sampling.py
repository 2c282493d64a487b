"""DDIM sampling with classifier-free guidance over text and visual context: the ONE denoising loop.

Guidance contrasts (prompt, context) with ("", null context), the pair the base was trained to drop.
`generate` draws images from per-sample seeds (the same seed gives the same image under any model:
that is what makes before/after comparisons in the forgetting protocol paired). The data-free KD
teacher walks the very same loop from its own noise and records the points it passes (`on_step`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from components.model.pipeline import DiffusionBundle, ddim_scheduler

OnStep = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]  # (t, x_t, eps_cond) at each step


def initial_latents(bundle: DiffusionBundle, seeds: list[int]) -> torch.Tensor:
    """x_T per seed (B, C, h, w), drawn by a CPU generator so a seed gives the same noise on every device
    (as diffusers recommends), then placed on the bundle's device once per call."""
    c = bundle.unet.config.in_channels
    s = bundle.unet.config.sample_size
    noise = torch.stack([torch.randn(c, s, s, generator=torch.Generator().manual_seed(int(sd))) for sd in seeds])
    return noise.to(bundle.device)


def context_embeddings(
    bundle: DiffusionBundle, references: torch.Tensor | None, batch: int, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """(B, R, 3, H, W) references -> (B, 1, E); None -> the null context (zeros)."""
    dim = bundle.context_encoder.config.embed_dim
    if references is None:
        return torch.zeros(batch, 1, dim, device=bundle.device)
    mask = mask.to(bundle.device) if mask is not None else None
    return bundle.context_encoder.embed_references(references.to(bundle.device), mask)


@torch.no_grad()
def denoise(
    bundle: DiffusionBundle,
    noise: torch.Tensor,
    prompts: list[str],
    context: torch.Tensor,
    *,
    steps: int,
    guidance_scale: float,
    on_step: OnStep | None = None,
    negative_prompts: list[str] | None = None,
) -> torch.Tensor:
    """x_T = noise * sigma_init (B, C, h, w) -> x_0 latents, guided by (prompt, context) vs ("", null).

    `context` (B, 1, E) is the visual context (zeros = none). `on_step(t, x_t, eps_cond)` sees every
    point of the trajectory with the conditional noise prediction at it, before the step is taken.
    `negative_prompts` (B,): what guidance steers away from in place of "" (serving's negative prompt)."""
    b = len(prompts)
    scheduler = ddim_scheduler(bundle.scheduler.config)
    scheduler.set_timesteps(steps)
    latents = noise * scheduler.init_noise_sigma
    negative = list(negative_prompts) if negative_prompts is not None else [""] * b
    text = bundle.encode_prompts(list(prompts) + negative)  # (2B, T, D): conditional, then unconditional
    ctx = torch.cat([context, torch.zeros_like(context)])  # (2B, 1, E)
    for t in scheduler.timesteps:
        model_in = scheduler.scale_model_input(torch.cat([latents, latents]), t)
        eps = bundle.unet(model_in, t, encoder_hidden_states=text, added_cond_kwargs={"image_embeds": [ctx]}).sample
        cond, uncond = eps.chunk(2)
        if on_step is not None:
            on_step(t, latents, cond)
        latents = scheduler.step(uncond + guidance_scale * (cond - uncond), t, latents).prev_sample
    return latents


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
    """Prompts (B,) with per-sample seeds -> images (B, 3, H, W) in [-1, 1], fp32 on the CPU, drawn on the
    bundle's device in its precision."""
    if len(prompts) != len(seeds):
        raise ValueError("one seed per prompt")
    with bundle.autocast():
        ctx = context_embeddings(bundle, references, len(prompts), reference_mask)
        noise = initial_latents(bundle, seeds)
        latents = denoise(bundle, noise, prompts, ctx, steps=steps, guidance_scale=guidance_scale)
        return bundle.decode_latents(latents).float().cpu()  # images leave the device once, as fp32
