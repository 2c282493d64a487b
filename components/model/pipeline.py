"""The text-to-image model as one bundle: tokenizer, CLIP text encoder, VAE, UNet, context path.

`build_tiny` makes the embedded world's model from params; `load` reads a saved bundle or any local
Stable Diffusion 1.x/2.x diffusers folder (unet/, vae/, text_encoder/, tokenizer/); `save` writes the
same diffusers folder layout plus `context_encoder/` and `ip_adapter.safetensors`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from components.device import CPU, Placement
from components.model.context import (
    ContextEncoder,
    attach_context_path,
    fresh_ip_adapter_state,
    ip_adapter_state,
)

IP_ADAPTER_FILE = "ip_adapter.safetensors"


@dataclass
class DiffusionBundle:
    tokenizer: object
    text_encoder: torch.nn.Module
    vae: torch.nn.Module
    unet: torch.nn.Module
    context_encoder: ContextEncoder
    scheduler: object  # DDPMScheduler used for training; sampling builds a DDIMScheduler from its config
    # False for a base folder without a trained context path (a plain SD folder): the path attached is
    # fresh and output-neutral, so ICGen would be a no-op and methods run without it (`uses_icgen`).
    has_context_path: bool = True
    placement: Placement = CPU  # where its modules live and their frozen weights' dtype (`place`)

    def place(self, where: Placement) -> DiffusionBundle:
        """Every module on `where.device`; with mixed precision the frozen parameters in `where.dtype` while
        the trainable ones (requires_grad: a task's LoRA, the token table, a K/V delta) stay fp32, as
        diffusers' training examples keep them, and so do the normalisation layers (autocast runs norms in
        fp32; their weights must match). Call after a task began (its new parameters exist)."""
        norms = (torch.nn.LayerNorm, torch.nn.GroupNorm)
        for module in self.modules().values():
            module.to(where.device)
            if where.mixed:
                for sub in module.modules():
                    if isinstance(sub, norms):
                        continue
                    for p in sub.parameters(recurse=False):
                        # frozen: the low precision; trainable: fp32, even when peft made a new LoRA in
                        # the dtype of a layer an earlier task had already cast (one model across tasks)
                        p.data = p.data.to(torch.float32 if p.requires_grad else where.dtype)
        self.placement = where
        return self

    @property
    def device(self) -> torch.device:
        return self.placement.device

    def autocast(self):
        """The context every forward pass of this bundle runs under (a no-op in fp32)."""
        return self.placement.autocast()

    @property
    def latent_scale(self) -> float:
        return float(self.vae.config.scaling_factor)

    @property
    def image_size(self) -> int:
        """Pixels per side the base generates and is trained at: the UNet's latent size times the VAE's
        downsampling (read from the configs, never assumed: 32 for the world base, 512 for SD 1.5)."""
        return int(self.unet.config.sample_size) * 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def prediction_type(self) -> str:
        """What the UNet predicts: "epsilon" (SD 1.x, the world base) or "v_prediction" (SD 2.x 768)."""
        return str(self.scheduler.config.get("prediction_type", "epsilon"))

    def modules(self) -> dict[str, torch.nn.Module]:
        return {
            "text_encoder": self.text_encoder,
            "vae": self.vae,
            "unet": self.unet,
            "context_encoder": self.context_encoder,
        }

    def eval(self) -> DiffusionBundle:
        for m in self.modules().values():
            m.eval()
        return self

    def requires_grad_(self, flag: bool) -> DiffusionBundle:
        for m in self.modules().values():
            m.requires_grad_(flag)
        return self

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        return encode_prompts(self.tokenizer, self.text_encoder, prompts)

    def encode_images(self, images: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """Pixels in [-1, 1], (B, 3, H, W) -> scaled latents."""
        dist = self.vae.encode(images).latent_dist
        z = dist.sample() if sample else dist.mean
        return z * self.latent_scale

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> pixels in [-1, 1]."""
        return self.vae.decode(latents / self.latent_scale).sample.clamp(-1, 1)


def encode_prompts(tokenizer, text_encoder, prompts: list[str]) -> torch.Tensor:
    """(B,) prompts -> (B, T, D) last hidden states, padded to the tokenizer's max length."""
    ids = tokenizer(
        prompts, padding="max_length", truncation=True, max_length=tokenizer.model_max_length, return_tensors="pt"
    ).input_ids
    return text_encoder(ids.to(text_encoder.device))[0]


def ddpm_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False
    )


def ddim_scheduler(config) -> object:
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config(config, clip_sample=False, set_alpha_to_one=False, steps_offset=1)


def build_tiny(cfg, seed: int = 0) -> DiffusionBundle:
    """A freshly initialised embedded-world model from `ModelConfig`."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from components.model.tokenizer import build_clip_tokenizer

    torch.manual_seed(seed)
    tokenizer = build_clip_tokenizer(cfg.max_prompt_tokens)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=cfg.text_hidden_size,
            intermediate_size=cfg.text_hidden_size * 4,
            num_hidden_layers=cfg.text_layers,
            num_attention_heads=cfg.text_heads,
            max_position_embeddings=cfg.max_prompt_tokens,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    vc = tuple(cfg.vae_channels)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(vc),
        up_block_types=("UpDecoderBlock2D",) * len(vc),
        block_out_channels=vc,
        layers_per_block=1,
        latent_channels=cfg.latent_channels,
        norm_num_groups=16,
        sample_size=cfg.image_size,
        mid_block_add_attention=False,
    )
    uc = tuple(cfg.unet_channels)
    unet = UNet2DConditionModel(
        sample_size=cfg.image_size // 2 ** (len(vc) - 1),
        in_channels=cfg.latent_channels,
        out_channels=cfg.latent_channels,
        down_block_types=("CrossAttnDownBlock2D",) * len(uc),
        up_block_types=("CrossAttnUpBlock2D",) * len(uc),
        block_out_channels=uc,
        layers_per_block=1,
        cross_attention_dim=cfg.text_hidden_size,
        attention_head_dim=cfg.unet_attention_head_dim,
        norm_num_groups=16,
    )
    context_encoder = ContextEncoder(embed_dim=cfg.context_embed_dim)
    attach_context_path(unet, fresh_ip_adapter_state(unet, cfg.context_embed_dim, seed))
    return DiffusionBundle(tokenizer, text_encoder, vae, unet, context_encoder, ddpm_scheduler())


def save(bundle: DiffusionBundle, out: Path, extra: dict | None = None) -> None:
    """Write the bundle as a diffusers folder. The text encoder is stored in fp16 (its 49k-row
    embedding table dominates the size); everything else in fp32."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bundle.tokenizer.save_pretrained(out / "tokenizer")
    bundle.text_encoder.to(torch.float16).save_pretrained(out / "text_encoder")
    bundle.text_encoder.to(torch.float32)
    bundle.vae.save_pretrained(out / "vae")
    bundle.context_encoder.save_pretrained(out / "context_encoder")
    bundle.scheduler.save_pretrained(out / "scheduler")
    state = ip_adapter_state(bundle.unet)
    flat = {f"{part}.{k}": v.contiguous() for part, sd in state.items() for k, v in sd.items()}
    save_file(flat, out / IP_ADAPTER_FILE)
    # Save the UNet without the context path so unet/ stays a plain diffusers UNet.
    unet = bundle.unet
    processors, hid_proj, hid_type = unet.attn_processors, unet.encoder_hid_proj, unet.config.encoder_hid_dim_type
    unet.set_default_attn_processor()
    unet.encoder_hid_proj = None
    unet.register_to_config(encoder_hid_dim_type=None)
    try:
        unet.save_pretrained(out / "unet")
    finally:
        unet.set_attn_processor(processors)
        unet.encoder_hid_proj = hid_proj
        unet.register_to_config(encoder_hid_dim_type=hid_type)
    index = {
        "_class_name": "LFSDiffusionBundle",
        "components": ["tokenizer", "text_encoder", "vae", "unet", "context_encoder", "scheduler"],
    }
    index.update(extra or {})
    (out / "lfsd_index.json").write_text(json.dumps(index, indent=2))


def has_trained_context_path(path: Path) -> bool:
    """A saved lfsd bundle carries its trained context path (`context_encoder/` + the IP-Adapter file);
    a Stable Diffusion folder does not."""
    return (Path(path) / "context_encoder").is_dir() and (Path(path) / IP_ADAPTER_FILE).is_file()


def load(path: Path, context_embed_dim: int = 64) -> DiffusionBundle:
    """Load a saved bundle or a local Stable Diffusion folder. A folder without a context path gets a
    fresh (untrained, output-neutral) one, so every model in lfsd has the same interface."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from safetensors.torch import load_file
    from transformers import CLIPTextModel

    from components.model.tokenizer import load_tokenizer

    path = Path(path)
    if not (path / "unet").is_dir() or not (path / "vae").is_dir():
        raise FileNotFoundError(f"{path}: not a diffusers model folder (needs unet/ and vae/)")
    tokenizer = load_tokenizer(path / "tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(path / "text_encoder", dtype=torch.float32)
    vae = AutoencoderKL.from_pretrained(path / "vae")
    unet = UNet2DConditionModel.from_pretrained(path / "unet")
    scheduler = DDPMScheduler.from_pretrained(path / "scheduler") if (path / "scheduler").is_dir() else ddpm_scheduler()
    if (path / "context_encoder").is_dir():
        context_encoder = ContextEncoder.from_pretrained(path / "context_encoder")
    else:
        context_encoder = ContextEncoder(embed_dim=context_embed_dim)
    has_context_path = has_trained_context_path(path)
    if (path / IP_ADAPTER_FILE).is_file():
        flat = load_file(path / IP_ADAPTER_FILE)
        state: dict[str, dict[str, torch.Tensor]] = {"image_proj": {}, "ip_adapter": {}}
        for k, v in flat.items():
            part, rest = k.split(".", 1)
            state[part][rest] = v
    else:
        state = fresh_ip_adapter_state(unet, context_encoder.config.embed_dim)
    attach_context_path(unet, state)
    return DiffusionBundle(tokenizer, text_encoder, vae, unet, context_encoder, scheduler, has_context_path).eval()
