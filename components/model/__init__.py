"""The text-to-image model: one bundle of diffusers/transformers parts and the one way to sample it.

pipeline     the bundle (tokenizer, CLIP text encoder, VAE, UNet, context path): load, save, encode prompts
sampling     DDIM with classifier-free guidance over text and visual context: THE denoising loop
context      In-Context Generation: reference images -> context tokens -> decoupled cross-attention
tokenizer    a real CLIP BPE tokenizer built offline; placeholder tokens for learned concepts
losses       the denoising objective shared by pre-training, customization and tests
references   a concept's reference images for ICGen
pixels       pixels between numpy and torch
base_folder  is a folder a usable base (checked at `lfsd init`)
sd_shaped    a tiny base with Stable Diffusion 1.x's exact layout, built offline (tests)
"""
