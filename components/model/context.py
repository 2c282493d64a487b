"""In-Context Generation (ICGen): reference images -> context tokens -> decoupled cross-attention.

The decoupled cross-attention is diffusers' own IP-Adapter machinery (IPAdapterAttnProcessor2_0 and
ImageProjection, loaded through the UNet's IP-Adapter loader), so the weights are stored in the
IP-Adapter file layout. What IP-Adapter takes from a CLIP vision tower, we take from a small image
encoder trained on the world: `ContextEncoder`, a diffusers ModelMixin saved like any other component.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

IP_TOKENS = 4  # diffusers' IP-Adapter layout fixes four image tokens


class ContextEncoder(ModelMixin, ConfigMixin):
    """Embeds each reference image (pixels in [-1, 1]); a concept's embedding is the mean over references."""

    @register_to_config
    def __init__(self, in_channels: int = 3, channels: tuple[int, ...] = (32, 64, 128), embed_dim: int = 64):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.GroupNorm(8, c), nn.SiLU()]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.proj = nn.Linear(c_in * 2, embed_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, embed_dim). Mean and max pooling keep both palette and pattern."""
        h = self.features(images)
        return self.proj(torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1))

    def embed_references(self, references: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, R, 3, H, W) -> (B, 1, embed_dim): the mean embedding over each sample's references.

        `mask` (B, R) marks which references are real; a row of zeros gives the null context (zeros).
        """
        b, r = references.shape[:2]
        emb = self(references.flatten(0, 1)).view(b, r, -1)
        if mask is None:
            return emb.mean(dim=1, keepdim=True)
        w = mask.to(emb.dtype).unsqueeze(-1)
        return ((emb * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0)).unsqueeze(1)


def fresh_ip_adapter_state(unet, embed_dim: int, seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """Randomly initialised weights in diffusers' IP-Adapter layout for this UNet's cross-attentions."""
    g = torch.Generator().manual_seed(seed)
    d = unet.config.cross_attention_dim
    image_proj = {
        "proj.weight": torch.randn(IP_TOKENS * d, embed_dim, generator=g) * embed_dim**-0.5,
        "proj.bias": torch.zeros(IP_TOKENS * d),
        "norm.weight": torch.ones(d),
        "norm.bias": torch.zeros(d),
    }
    ip_adapter: dict[str, torch.Tensor] = {}
    key_id = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        hidden = _hidden_size(unet, name)
        # to_v_ip starts at zero: a fresh context path leaves the text path's output unchanged.
        ip_adapter[f"{key_id}.to_k_ip.weight"] = torch.randn(hidden, d, generator=g) * d**-0.5
        ip_adapter[f"{key_id}.to_v_ip.weight"] = torch.zeros(hidden, d)
        key_id += 2
    return {"image_proj": image_proj, "ip_adapter": ip_adapter}


def _hidden_size(unet, name: str) -> int:
    channels = unet.config.block_out_channels
    if name.startswith("mid_block"):
        return channels[-1]
    block_id = int(name.split(".")[1])
    return list(reversed(channels))[block_id] if name.startswith("up_blocks") else channels[block_id]


def attach_context_path(unet, state: dict[str, dict[str, torch.Tensor]]) -> None:
    """Install the decoupled cross-attention with diffusers' IP-Adapter loader."""
    unet._load_ip_adapter_weights([state], low_cpu_mem_usage=False)


def ip_adapter_state(unet) -> dict[str, dict[str, torch.Tensor]]:
    """Read the context path back out of the UNet in IP-Adapter layout (for saving)."""
    proj = unet.encoder_hid_proj.image_projection_layers[0]
    image_proj = {
        "proj.weight": proj.image_embeds.weight,
        "proj.bias": proj.image_embeds.bias,
        "norm.weight": proj.norm.weight,
        "norm.bias": proj.norm.bias,
    }
    ip_adapter: dict[str, torch.Tensor] = {}
    key_id = 1
    for name, processor in unet.attn_processors.items():
        if name.endswith("attn1.processor"):
            continue
        ip_adapter[f"{key_id}.to_k_ip.weight"] = processor.to_k_ip[0].weight
        ip_adapter[f"{key_id}.to_v_ip.weight"] = processor.to_v_ip[0].weight
        key_id += 2
    return {
        "image_proj": {k: v.detach().clone() for k, v in image_proj.items()},
        "ip_adapter": {k: v.detach().clone() for k, v in ip_adapter.items()},
    }


def context_parameters(unet) -> list[nn.Parameter]:
    """The parameters of the decoupled cross-attention path inside the UNet."""
    params = list(unet.encoder_hid_proj.parameters())
    for name, processor in unet.attn_processors.items():
        if not name.endswith("attn1.processor"):
            params += list(processor.parameters())
    return params
