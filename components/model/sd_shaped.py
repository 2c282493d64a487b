"""A base with exactly Stable Diffusion 1.x's folder layout and block structure, built offline.

Why: lfsd's users bring SD checkpoints; the pipeline must be proven on one without a 4 GB download.
This writes what `StableDiffusionPipeline.save_pretrained` writes (`model_index.json`, `scheduler/`,
`text_encoder/`, `tokenizer/`, `unet/`, `vae/`), in one of two sizes:

    tiny   (default) SD 1.5's architecture at tiny widths: the same UNet block types and names (3
           cross-attention down blocks + 1 plain, 2 layers per block, mid block, mirrored up blocks), the
           same 4-block VAE (8x down, 4 latent channels, scaling 0.18215), a 2-layer CLIP text encoder with
           77 positions. Test data for the plumbing (loading, LoRA key names, exports).
    sd15   Stable Diffusion 1.5's REAL configs: the UNet (320/640/1280/1280, 2 layers per block,
           cross-attention 768, head dim 8; 859,520,964 parameters), the VAE (128/256/512/512, 4 latent
           channels, scaling 0.18215; 83,653,863), the CLIP ViT-L/14 text encoder (768 wide, 12 layers, 12
           heads, MLP 3072, 77 positions; 123,060,480). FOR COST AND MEMORY MEASUREMENT ONLY, NEVER
           QUALITY: the weights are random (nothing is downloaded), so what it draws is noise. 2.3 GB on
           disk: the UNet is stored in float16 (1.7 GB instead of 3.4 GB) and the text encoder too;
           `components.model.pipeline.load` reads both back as float32, so what is measured is the fp32 (or
           `runtime.precision`) model, only its random values were rounded to fp16 once.

Both carry the real CLIP tokenizer (lfsd's offline build, `components/model/tokenizer.py`) and SD 1.5's
scheduler config; weights are random, never a quality claim.

    python -m components.model.sd_shaped OUT_DIR [--size tiny|sd15] [--resolution 64|512] [--seed 0]

`--resolution` is the image size in pixels (tiny: default 64; sd15: default 512, SD 1.5's own; 256 gives
the same network with a 32x32 latent, which only changes the configs' `sample_size`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

SIZES = ("tiny", "sd15")

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

# Parameter counts of SD 1.5's released components (what `sd15` must reproduce, tests/unit/test_real_size.py).
SD15_PARAMETERS = {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480}


def sd15_unet_config(resolution: int = 512) -> dict:
    """SD 1.5's unet/config.json values (sample_size = resolution / 8; 64 at SD's own 512 px)."""
    return {
        "sample_size": resolution // 8,
        "in_channels": 4,
        "out_channels": 4,
        "center_input_sample": False,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        "block_out_channels": (320, 640, 1280, 1280),
        "layers_per_block": 2,
        "downsample_padding": 1,
        "mid_block_scale_factor": 1,
        "act_fn": "silu",
        "norm_num_groups": 32,
        "norm_eps": 1e-5,
        "cross_attention_dim": 768,
        "attention_head_dim": 8,
    }


def sd15_vae_config(resolution: int = 512) -> dict:
    """SD 1.5's vae/config.json values."""
    return {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ("DownEncoderBlock2D",) * 4,
        "up_block_types": ("UpDecoderBlock2D",) * 4,
        "block_out_channels": (128, 256, 512, 512),
        "layers_per_block": 2,
        "act_fn": "silu",
        "latent_channels": 4,
        "norm_num_groups": 32,
        "sample_size": resolution,
        "scaling_factor": 0.18215,
    }


def sd15_text_config(vocab_size: int = 49408, bos: int = 49406, eos: int = 49407, pad: int = 49407) -> dict:
    """CLIP ViT-L/14's text tower as SD 1.5's text_encoder/config.json has it (token ids: lfsd's tokenizer)."""
    return {
        "vocab_size": vocab_size,
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "max_position_embeddings": 77,
        "projection_dim": 768,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
        "attention_dropout": 0.0,
        "dropout": 0.0,
        "initializer_factor": 1.0,
        "initializer_range": 0.02,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "pad_token_id": pad,
    }


def _tiny_configs(resolution: int, width: int, text_width: int, tokenizer) -> tuple[dict, dict, dict]:
    channels = (width, width, 2 * width, 2 * width)  # SD 1.5: 320, 640, 1280, 1280
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": text_width,
        "intermediate_size": 4 * text_width,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 77,
        "projection_dim": text_width,
        "hidden_act": "quick_gelu",
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    unet = {
        "sample_size": resolution // 8,
        "in_channels": 4,
        "out_channels": 4,
        "layers_per_block": 2,
        "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        "block_out_channels": channels,
        "cross_attention_dim": text_width,
        "attention_head_dim": 8,
        "norm_num_groups": 32,
    }
    vae = {
        "in_channels": 3,
        "out_channels": 3,
        "latent_channels": 4,
        "layers_per_block": 2,
        "sample_size": resolution,
        "down_block_types": ("DownEncoderBlock2D",) * 4,
        "up_block_types": ("UpDecoderBlock2D",) * 4,
        "block_out_channels": channels,
        "norm_num_groups": 32,
        "scaling_factor": 0.18215,
    }
    return text, unet, vae


def build_sd_shaped(
    out: Path,
    *,
    resolution: int | None = None,
    seed: int = 0,
    width: int = 32,
    text_width: int = 32,
    size: str = "tiny",
):
    """Write an SD-1.x-shaped pipeline folder to `out` and return the pipeline. `resolution` (pixels; default
    64 for tiny, 512 for sd15) must be a multiple of 64 (the VAE downsamples 8x, the UNet 8x more).
    `size="sd15"`: SD 1.5's real configs with random weights (cost and memory only; `width`/`text_width`
    are ignored); its UNet and text encoder are written in float16 and the returned pipeline keeps them so."""
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from components.model.tokenizer import build_clip_tokenizer

    if size not in SIZES:
        raise ValueError(f"size {size!r}: expected one of {', '.join(SIZES)}")
    resolution = resolution or (512 if size == "sd15" else 64)
    if resolution % 64:
        raise ValueError(f"resolution {resolution} is not a multiple of 64")
    torch.manual_seed(seed)
    tokenizer = build_clip_tokenizer(77)
    if size == "sd15":
        ids = (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
        text_cfg, unet_cfg, vae_cfg = (
            sd15_text_config(len(tokenizer), *ids),
            sd15_unet_config(resolution),
            sd15_vae_config(resolution),
        )
    else:
        text_cfg, unet_cfg, vae_cfg = _tiny_configs(resolution, width, text_width, tokenizer)
    text_encoder = CLIPTextModel(CLIPTextConfig(**text_cfg))
    unet = UNet2DConditionModel(**unet_cfg)
    vae = AutoencoderKL(**vae_cfg)
    if size == "sd15":  # half the disk; `pipeline.load` reads them back as float32
        unet.to(torch.float16)
        text_encoder.to(torch.float16)
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


def count_parameters(size: str = "sd15", resolution: int = 512) -> dict[str, int]:
    """Parameters per component of a `size` base, counted on the meta device (nothing allocated, ~1 s)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from components.model.tokenizer import build_clip_tokenizer

    tokenizer = build_clip_tokenizer(77)
    if size == "sd15":
        ids = (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
        configs = sd15_text_config(len(tokenizer), *ids), sd15_unet_config(resolution), sd15_vae_config(resolution)
    else:
        configs = _tiny_configs(resolution, 32, 32, tokenizer)
    text_cfg, unet_cfg, vae_cfg = configs
    with torch.device("meta"):
        modules = {
            "unet": UNet2DConditionModel(**unet_cfg),
            "vae": AutoencoderKL(**vae_cfg),
            "text_encoder": CLIPTextModel(CLIPTextConfig(**text_cfg)),
        }
    return {k: sum(p.numel() for p in m.parameters()) for k, m in modules.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", choices=SIZES, default="tiny", help="tiny (tests) or sd15 (SD 1.5's real configs)")
    parser.add_argument("--resolution", type=int, default=None, help="pixels (default: 64 tiny, 512 sd15)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.out.exists():
        raise SystemExit(f"error: {args.out}: already exists")
    build_sd_shaped(args.out, resolution=args.resolution, seed=args.seed, size=args.size)
    what = "Stable Diffusion 1.5-sized base (random weights: cost and memory only)" if args.size == "sd15" else ""
    print(f"{what or 'SD-1.x-shaped base'} written to {args.out}")


if __name__ == "__main__":
    main()
