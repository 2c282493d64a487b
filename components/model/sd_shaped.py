"""A tiny base with exactly Stable Diffusion 1.x's folder layout and block structure, built offline.

Why: lfsd's users bring SD checkpoints; the pipeline must be proven on one without a 4 GB download.
This writes what `StableDiffusionPipeline.save_pretrained` writes (`model_index.json`, `scheduler/`,
`text_encoder/`, `tokenizer/`, `unet/`, `vae/`) for SD 1.5's architecture at tiny widths: the same
UNet block types and names (3 cross-attention down blocks + 1 plain, 2 layers per block, mid block,
mirrored up blocks), the same 4-block VAE (8x down, 4 latent channels, scaling 0.18215), a CLIP text
encoder with 77 positions, the real CLIP tokenizer and SD 1.5's scheduler config. Weights are random:
it is test data for the plumbing (loading, LoRA key names, exports), not a quality claim.

    python -m components.model.sd_shaped OUT_DIR [--resolution 64] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

SD15_SCHEDULER = {  # SD 1.5's scheduler/scheduler_config.json, values as shipped
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "clip_sample": False,
    "prediction_type": "epsilon",
    "trained_betas": None,
}


def build_sd_shaped(out: Path, *, resolution: int = 64, seed: int = 0, width: int = 32, text_width: int = 32):
    """Write an SD-1.x-shaped pipeline folder to `out` and return the pipeline. `resolution` must be a
    multiple of 64 (the VAE downsamples 8x, the UNet 8x more)."""
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from components.model.tokenizer import build_clip_tokenizer

    if resolution % 64:
        raise ValueError(f"resolution {resolution} is not a multiple of 64")
    torch.manual_seed(seed)
    tokenizer = build_clip_tokenizer(77)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=text_width,
            intermediate_size=4 * text_width,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=77,
            projection_dim=text_width,
            hidden_act="quick_gelu",
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    channels = (width, width, 2 * width, 2 * width)  # SD 1.5: 320, 640, 1280, 1280
    unet = UNet2DConditionModel(
        sample_size=resolution // 8,
        in_channels=4,
        out_channels=4,
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        block_out_channels=channels,
        cross_attention_dim=text_width,
        attention_head_dim=8,
        norm_num_groups=32,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        layers_per_block=2,
        sample_size=resolution,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=channels,
        norm_num_groups=32,
        scaling_factor=0.18215,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=PNDMScheduler.from_config(SD15_SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(Path(out), safe_serialization=True)
    return pipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.out.exists():
        raise SystemExit(f"error: {args.out}: already exists")
    build_sd_shaped(args.out, resolution=args.resolution, seed=args.seed)
    print(f"SD-1.x-shaped base written to {args.out}")


if __name__ == "__main__":
    main()
