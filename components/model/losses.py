"""The denoising objective shared by pre-training, customization and tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from components.model.pipeline import DiffusionBundle, encode_prompts


def denoising_target(scheduler, latents: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """What the base's UNet predicts at (x_t, t), read from its scheduler config: the noise (epsilon: SD
    1.x, the world base) or the velocity (v_prediction: SD 2.x 768)."""
    if scheduler.config.get("prediction_type", "epsilon") == "v_prediction":
        return scheduler.get_velocity(latents, noise, t)
    return noise


def denoising_loss(
    bundle: DiffusionBundle,
    latents: torch.Tensor,
    prompts: list[str],
    context: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """MSE to the base's prediction target (epsilon or v) at uniformly drawn timesteps.

    latents (B, C, h, w), already scaled; context (B, 1, E) context embeddings (zeros = no context).
    """
    b = latents.shape[0]
    text = encode_prompts(bundle.tokenizer, bundle.text_encoder, prompts)
    noise = torch.randn(latents.shape, generator=generator)
    t = torch.randint(0, bundle.scheduler.config.num_train_timesteps, (b,), generator=generator)
    noisy = bundle.scheduler.add_noise(latents, noise, t)
    pred = bundle.unet(noisy, t, encoder_hidden_states=text, added_cond_kwargs={"image_embeds": [context]}).sample
    return F.mse_loss(pred, denoising_target(bundle.scheduler, latents, noise, t))
