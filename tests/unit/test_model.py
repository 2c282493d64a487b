"""The model stack: tokenizer, save/load round trips (tiny and SD-shaped), the ICGen path."""

from __future__ import annotations

import torch

from components.model.context import context_parameters
from components.model.losses import denoising_loss
from components.model.pipeline import build_tiny, load, save
from components.model.sampling import generate
from components.model.tokenizer import add_placeholder_token, build_clip_tokenizer


def test_clip_tokenizer_matches_openai_ids():
    tok = build_clip_tokenizer(16)
    assert len(tok) == 49408
    # OpenAI CLIP: "a photo of a cat" -> 320, 1125, 539, 320, 2368 between BOS 49406 and EOS 49407.
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]


def test_placeholder_token_is_one_token_initialised_from_class_word(tiny_model_config):
    b = build_tiny(tiny_model_config)
    token_id = add_placeholder_token(b.tokenizer, b.text_encoder, "kamizo", "star")
    ids = b.tokenizer("a <kamizo> star", add_special_tokens=False).input_ids
    assert token_id in ids and len(ids) == 3
    emb = b.text_encoder.get_input_embeddings().weight
    star = b.tokenizer("star", add_special_tokens=False).input_ids
    assert torch.allclose(emb[token_id], emb[star].mean(0))


def _activate_context(bundle):
    """A fresh context path is output-neutral (to_v_ip = 0); randomise it like a trained one."""
    with torch.no_grad():
        for p in context_parameters(bundle.unet):
            if p.ndim == 2:
                p.normal_(0, 0.2)


def _sample(bundle, refs=None):
    return generate(bundle, ["a red star on a white background"] * 2, [1, 2], references=refs, steps=3)


def test_tiny_round_trip_preserves_outputs(tiny_bundle, tmp_path):
    _activate_context(tiny_bundle)  # give the context path weight so the round trip covers it
    refs = torch.rand(2, 3, 3, 32, 32) * 2 - 1
    before = _sample(tiny_bundle, refs)
    save(tiny_bundle, tmp_path / "m")
    again = load(tmp_path / "m")
    after = _sample(again, refs)
    # The text encoder is stored in fp16, so allow its rounding.
    assert (before - after).abs().max() < 2e-2
    assert (tmp_path / "m" / "unet" / "config.json").is_file()
    assert (tmp_path / "m" / "ip_adapter.safetensors").is_file()


def test_icgen_context_changes_the_output(tiny_bundle):
    _activate_context(tiny_bundle)
    a = _sample(tiny_bundle, torch.rand(2, 3, 3, 32, 32) * 2 - 1)
    b = _sample(tiny_bundle, torch.rand(2, 3, 3, 32, 32) * 2 - 1)
    none = _sample(tiny_bundle)
    assert (a - b).abs().mean() > 1e-3
    assert (a - none).abs().mean() > 1e-3


def test_fresh_context_path_is_output_neutral(tiny_model_config):
    b = build_tiny(tiny_model_config, seed=1).eval()
    with_ctx = _sample(b, torch.rand(2, 3, 3, 32, 32) * 2 - 1)
    without = _sample(b)
    assert torch.allclose(with_ctx, without, atol=1e-5)


def _write_tiny_sd_folder(path):
    """A random Stable-Diffusion-shaped folder: SD block layout, 8x VAE, CLIP text encoder, tokenizer."""
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    tok = build_clip_tokenizer(16)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32,
    )
    vae = AutoencoderKL(
        block_out_channels=(32, 32, 32, 32), in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32,
        sample_size=64,
    )
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=2, max_position_embeddings=16,
                                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                        pad_token_id=tok.pad_token_id))
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet,
                                   scheduler=PNDMScheduler(skip_prk_steps=True), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(path)


def test_stable_diffusion_folder_trains_and_samples_through_the_same_code(tmp_path):
    _write_tiny_sd_folder(tmp_path / "sd")
    assert (tmp_path / "sd" / "model_index.json").is_file()
    bundle = load(tmp_path / "sd")
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    latents = bundle.encode_images(images)
    assert latents.shape == (2, 4, 8, 8)  # latent space through its 8x VAE
    bundle.unet.train()
    opt = torch.optim.SGD(bundle.unet.parameters(), lr=0.1)
    before = {k: v.clone() for k, v in bundle.unet.state_dict().items() if "to_k" in k}
    context = torch.zeros(2, 1, bundle.context_encoder.config.embed_dim)
    loss = denoising_loss(bundle, latents, ["a photo of a dog"] * 2, context, torch.Generator().manual_seed(0))
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(before[k], v) for k, v in bundle.unet.state_dict().items() if k in before)
    bundle.unet.eval()
    out = generate(bundle, ["a photo of a dog"], [0], steps=2)
    assert out.shape == (1, 3, 64, 64) and torch.isfinite(out).all()
    save(bundle, tmp_path / "saved")
    assert load(tmp_path / "saved").unet.config.cross_attention_dim == 32
