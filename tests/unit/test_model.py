"""The model stack: tokenizer, save/load round trips (tiny and SD-shaped), the ICGen path."""

from __future__ import annotations

import torch

from components.model.context import context_parameters
from components.model.losses import denoising_loss
from components.model.pipeline import build_tiny, load, save
from components.model.sampling import generate
from components.model.tokenizer import add_placeholder_token, build_clip_tokenizer, load_tokenizer


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


def test_a_loaded_tokenizer_is_parsed_once_and_each_load_gets_its_own_copy(tmp_path):
    """A swap in a serving replica loads the base's tokenizer again: that load must not make one Python object
    per BPE merge (they pinned ~27 MiB of the replica's memory), and a copy must stay a copy."""
    import tracemalloc

    from transformers import CLIPTokenizer

    build_clip_tokenizer(16).save_pretrained(tmp_path / "tok")
    stock = CLIPTokenizer.from_pretrained(tmp_path / "tok")
    first = load_tokenizer(tmp_path / "tok")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        second = load_tokenizer(tmp_path / "tok")
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 1 << 20, f"a load kept {kept / 2**20:.1f} MiB of Python objects"  # stock: ~7.7 MiB
    for text in ("a photo of a cat", "<|startoftext|> ünïcode 123!!", "a red-striped mug, on a white background"):
        assert first(text).input_ids == second(text).input_ids == stock(text).input_ids
    assert first.model_max_length == stock.model_max_length == 16 and first.pad_token == stock.pad_token

    first.add_tokens(["<kazoxu>"])
    assert len(first) == len(stock) + 1 and len(second) == len(stock) == len(load_tokenizer(tmp_path / "tok"))
    first.save_pretrained(tmp_path / "tok2")  # other content: parsed on its own
    assert "<kazoxu>" in load_tokenizer(tmp_path / "tok2").get_vocab()
    assert "<kazoxu>" not in load_tokenizer(tmp_path / "tok").get_vocab()


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


def test_stable_diffusion_folder_trains_and_samples_through_the_same_code(sd_base_dir, tmp_path):
    assert (sd_base_dir / "model_index.json").is_file()
    bundle = load(sd_base_dir)
    assert bundle.image_size == 64 and bundle.prediction_type == "epsilon"  # read from its configs
    assert not bundle.has_context_path  # an SD folder has none: ICGen is off on it (methods.uses_icgen)
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


def test_lfsd_sampling_on_an_sd_folder_is_the_stock_pipelines_sampling(sd_base_dir):
    """The one DDIM loop draws what diffusers' StableDiffusionPipeline draws from the same seed: what makes
    exported LoRA/embedding files reproduce `lfsd generate` in stock tools."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    bundle = load(sd_base_dir)
    ours = generate(bundle, ["a photo of a dog"], [7], steps=4, guidance_scale=7.5)
    pipe = StableDiffusionPipeline.from_pretrained(sd_base_dir)
    pipe.scheduler = DDIMScheduler.from_config(
        pipe.scheduler.config, clip_sample=False, set_alpha_to_one=False, steps_offset=1
    )
    theirs = pipe(
        "a photo of a dog",
        num_inference_steps=4,
        guidance_scale=7.5,
        output_type="pt",
        generator=torch.Generator().manual_seed(7),
    ).images
    assert theirs.shape == (1, 3, 64, 64)
    # Float drift only: 0.0 on the CPU this was written on, 1.22e-5 on an AMD EPYC (2026-12-04: same wheels,
    # other SIMD kernels, other summation order). A different scheduler or guidance differs by far more.
    drift = ((ours + 1) / 2 - theirs).abs().max().item()
    assert drift < 1e-4, drift


def test_the_training_target_follows_the_bases_prediction_type():
    """epsilon bases learn the noise, v_prediction bases (SD 2.x 768) the velocity."""
    from diffusers import DDPMScheduler

    from components.model.losses import denoising_target

    x, noise, t = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8), torch.tensor([10, 900])
    eps = DDPMScheduler(prediction_type="epsilon")
    v = DDPMScheduler(prediction_type="v_prediction")
    assert torch.equal(denoising_target(eps, x, noise, t), noise)
    a = v.alphas_cumprod[t].view(-1, 1, 1, 1)
    assert torch.allclose(denoising_target(v, x, noise, t), a.sqrt() * noise - (1 - a).sqrt() * x, atol=1e-6)
