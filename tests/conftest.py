"""Shared fixtures. Heavy libraries are imported inside fixtures so collection stays fast."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def _threads():
    import torch

    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_model_config():
    from components.config import ModelConfig

    return ModelConfig(
        text_hidden_size=32, text_layers=1, text_heads=2, max_prompt_tokens=16, latent_channels=4,
        vae_channels=(16, 16, 16), unet_channels=(16, 32), unet_attention_head_dim=8, context_embed_dim=16,
        image_size=32,
    )


@pytest.fixture(scope="session")
def tiny_bundle(tiny_model_config):
    from components.model.pipeline import build_tiny

    return build_tiny(tiny_model_config, seed=0).eval()
