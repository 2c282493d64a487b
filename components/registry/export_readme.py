"""The README written into an export: trigger words, then per tool which file to use and how.

Why per tool: the same numbers are read differently by each. diffusers converts the kohya keys and
names a token by its key (`token=` for the kohya embedding layout); ComfyUI (`embedding:<file>`),
A1111/Forge (the file's name as the trigger) and kohya's gen_img (the file's name, one vector per row)
name an embedding after its file and take one term per file; only diffusers reads a peft-keyed LoRA.
"""

from __future__ import annotations

from components.registry.export import (
    EMBEDDINGS_FOLDER,
    MERGED_EMBEDDINGS_FOLDER,
    VersionExport,
    lora_file,
    safe_name,
)


def readme(v: VersionExport, fmt: str, merged: bool) -> str:
    """The README: what was exported, the trigger table, a tool table, then stock-diffusers code."""
    names = [safe_name(c.name) for c in v.concepts]
    rows = "\n".join(
        f"| `{c.token}` | `{n}` | {c.class_word} | {lora_file(v.stem if merged else n, fmt)} | "
        f"{EMBEDDINGS_FOLDER}/{n}.safetensors |"
        for c, n in zip(v.concepts, names, strict=True)
    )
    version = f"{v.model_name} version {v.model_version}" if v.model_version else v.uri
    files = "One merged LoRA holds every concept (ranks concatenated, exact)." if merged else "One LoRA per concept."
    return f"""# {v.stem}: lfsd concepts for other tools

Exported from `{v.uri}` ({version}) by `lfsd export --format {fmt}{" --merged" if merged else ""}`.
Base: `{v.base["name"]}` (lfsd folder hash `{v.base["hash"][:16]}...`, {v.base["architecture"]}): the
concepts were learned on this base and only reproduce lfsd's images on it.

| token (diffusers) | trigger (ComfyUI, A1111/Forge, kohya: the file's name) | class word | LoRA | embedding |
|---|---|---|---|---|
{rows}

Every LoRA must be active at strength 1.0 (lfsd stacks them all) and every embedding loaded. They
reproduce `lfsd generate PROMPT --model {v.uri}` (no `--concept`): lfsd's visual-context path (ICGen
reference images) has no counterpart in other tools.
{files} Each embedding file holds one token as one vector, shape (1, D).

## Which file in which tool

{tool_table(v, fmt, merged)}
{diffusers_code(v, fmt, merged)}
Metadata (`safetensors` header): `ss_*` and `modelspec.*` as kohya sd-scripts writes them, `sshs_*` hashes
as kohya computes them, `lfsd.*` (model, version, token, class word, base hash). LoRA scales are folded
into `lora_up`/`lora_B` with alpha = rank: load at strength 1.0.
"""


def tool_table(v: VersionExport, fmt: str, merged: bool) -> str:
    """Per tool: where the LoRA and the embeddings go and what the prompt says."""
    first, stem = v.concepts[0], safe_name(v.concepts[0].name)
    lora = f"`{lora_file(v.stem if merged else stem, fmt)}`"
    if fmt == "diffusers":
        foreign = (
            f"not this export's LoRA: its peft keys are ignored there; export again without "
            f"`--format diffusers` (kohya keys, read everywhere) and use {lora_file(stem, 'kohya')}"
        )
        comfy = a1111 = kohya = foreign
    else:
        comfy = f"{lora} into `models/loras`, LoraLoader at strength 1.0"
        a1111 = f"{lora} into `models/Lora`, `<lora:{v.stem if merged else stem}:1>` in the prompt"
        kohya = f"{lora}: `networks.lora` weights (`--network_module networks.lora --network_weights`)"
    emb = f"`{EMBEDDINGS_FOLDER}/*.safetensors`"
    prompt = f"`a {stem} {first.class_word}`"  # A1111/Forge and kohya: the embedding's file name
    token_prompt = f"`a {first.token} {first.class_word}`"
    token_arg = f' with `token="{first.token}"` (its concept\'s)' if fmt == "kohya" else ""
    merged_row = (
        f"\n\n`{MERGED_EMBEDDINGS_FOLDER}/{v.stem}.safetensors` holds every token in one file, for diffusers only "
        "(ComfyUI would reach only its first token, A1111/Forge refuse a file with several terms)."
        if merged
        else ""
    )
    return f"""| tool | LoRA | embeddings | prompt |
|---|---|---|---|
| diffusers | {lora} (`load_lora_weights`) | {emb}, each `load_textual_inversion`{token_arg} | {token_prompt} |
| ComfyUI | {comfy} | {emb} into `models/embeddings` | `a embedding:{stem} {first.class_word}` |
| A1111 / Forge | {a1111} | {emb} into `embeddings` | {prompt} |
| kohya sd-scripts (gen_img) | {kohya} | {emb} (`--textual_inversion_embeddings`) | {prompt} |{merged_row}
"""


def diffusers_code(v: VersionExport, fmt: str, merged: bool) -> str:
    """Stock diffusers code that draws what lfsd draws (lfsd's DDIM settings, its steps and guidance)."""
    steps = v.steps or 30
    guidance = v.guidance_scale if v.guidance_scale is not None else 7.5
    first = v.concepts[0]
    names = [safe_name(c.name) for c in v.concepts]
    if merged:
        lora_lines = f'pipe.load_lora_weights("{lora_file(v.stem, fmt)}", adapter_name="lfsd")\n'
        ti_lines = (
            f'emb = load_file("{MERGED_EMBEDDINGS_FOLDER}/{v.stem}.safetensors")  # {{token: (1, D)}}\n'
            "pipe.load_textual_inversion(list(emb.values()), token=list(emb.keys()))\n"
        )
    else:
        lora_lines = "".join(f'pipe.load_lora_weights("{lora_file(n, fmt)}", adapter_name="{n}")\n' for n in names)
        weights = [1.0] * len(names)
        lora_lines += f"pipe.set_adapters({names!r}, adapter_weights={weights!r})  # all at once, as lfsd stacks them\n"
        token_arg = (lambda c: f', token="{c.token}"') if fmt == "kohya" else (lambda c: "")
        ti_lines = "".join(
            f'pipe.load_textual_inversion("{EMBEDDINGS_FOLDER}/{n}.safetensors"{token_arg(c)})\n'
            for c, n in zip(v.concepts, names, strict=True)
        )
    world = (
        ""
        if v.base["ss_version"].startswith("sd_")
        else (
            "This base is lfsd's own world base, not a Stable Diffusion folder: `StableDiffusionPipeline` cannot\n"
            "load it, and ComfyUI, A1111/Forge and kohya have no model it fits. Generate with lfsd instead\n"
            f"(`lfsd generate PROMPT --model {v.uri}`); the code below is for an export of a chain learned on\n"
            "an SD 1.x/2.x base (`lfsd init --base SD_FOLDER`).\n\n"
        )
    )
    return f"""## Stock diffusers

{world}```python
import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline
{"from safetensors.torch import load_file" + chr(10) if merged else ""}
pipe = StableDiffusionPipeline.from_pretrained("path/to/{v.base["name"]}")  # the base named above
# lfsd's sampler: DDIM with these settings (any scheduler works; this one reproduces lfsd's images)
pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, clip_sample=False, set_alpha_to_one=False,
                                           steps_offset=1)
{lora_lines}{ti_lines}image = pipe("a {first.token} {first.class_word}", num_inference_steps={steps},
             guidance_scale={guidance}, generator=torch.Generator().manual_seed(0)).images[0]
image.save("{names[0]}.png")
```
"""
