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

    from components.config import load_params

    torch.set_num_threads(load_params().runtime.threads)


@pytest.fixture(scope="session")
def params():
    from components.config import load_params

    return load_params()


@pytest.fixture(scope="session")
def tiny_model_config(params):
    import dataclasses

    return dataclasses.replace(
        params.model,
        text_hidden_size=32,
        text_layers=1,
        text_heads=2,
        max_prompt_tokens=16,
        latent_channels=4,
        vae_channels=(16, 16, 16),
        unet_channels=(16, 32),
        unet_attention_head_dim=8,
        context_embed_dim=16,
    )


@pytest.fixture(scope="session")
def tiny_bundle(tiny_model_config):
    from components.model.pipeline import build_tiny

    return build_tiny(tiny_model_config, seed=0).eval()


@pytest.fixture(scope="session")
def tiny_base_dir(tiny_model_config, tmp_path_factory):
    """A tiny randomly initialised base, saved like models/base, with an active context path."""
    import torch

    from components.model.context import context_parameters
    from components.model.pipeline import build_tiny, save

    bundle = build_tiny(tiny_model_config, seed=0)
    with torch.no_grad():
        for p in context_parameters(bundle.unet):
            if p.ndim == 2:
                p.normal_(0, 0.2)
    out = tmp_path_factory.mktemp("tiny") / "base"
    save(bundle, out)
    return out


@pytest.fixture(scope="session")
def sd_base_dir(tmp_path_factory):
    """A tiny base with Stable Diffusion 1.x's exact folder layout and block structure (random weights,
    64 px): what `python -m components.model.sd_shaped` writes. Built once per session (~2 s)."""
    from components.model.sd_shaped import build_sd_shaped

    out = tmp_path_factory.mktemp("sd") / "sd-base"
    build_sd_shaped(out, resolution=64, seed=0)
    return out


@pytest.fixture
def two_concepts(tmp_path):
    from components.world.concepts import write_concepts

    return write_concepts(tmp_path / "concepts", n=2, shots=3, seed=5)


@pytest.fixture(scope="session")
def tiny_training_config(params):
    import dataclasses

    return dataclasses.replace(
        params.training,
        steps=3,
        batch_size=2,
        kd_batch_size=2,
        kd_trajectories=2,
        kd_teacher_steps=2,
        kd_refresh_every=2,
        prior_images=2,
        prior_batch_size=2,
        report_every=1,
    )
