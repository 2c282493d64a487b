"""LoRA and textual-inversion file layouts other tools read, and the metadata they show.

Why a module of its own: lfsd stores a task's LoRA as peft writes it (`<module>.lora_A.weight`,
`<module>.lora_B.weight`, scale = lora_alpha / r) and its token as {token: vector}. Other tools key the
same numbers differently:

    diffusers  unet.<module>.lora_A.weight / .lora_B.weight   (no alpha: loaders apply scale 1)
    kohya      lora_unet_<module with _>.lora_down.weight / .lora_up.weight / .alpha   (scale alpha / dim)
    TI         diffusers {token: (D,)};  A1111 {"emb_params": (1, D)} (the trigger is the file's name)

Every exported LoRA has its scale folded into B and alpha = rank, so each loader applies scale 1 and
the file means B @ A exactly, whatever convention it reads alpha by. `concat_ranks` merges stacked
adapters into one LoRA: A stacked by rows, B by columns, so B @ A = sum_k B_k @ A_k (what the stack
adds to W x) with no approximation. No torch/safetensors at import time; no lfsd model code.
"""

from __future__ import annotations

import hashlib
import json

from components.lifelong.lora_pairs import (  # noqa: F401  (re-exported: the export reads them from here)
    DIFFUSERS_UNET_PREFIX,
    LoraFormatError,
    LoraPairs,
    lora_scale,
    peft_pairs,
)

KOHYA_UNET_PREFIX = "lora_unet_"
A1111_EMBEDDING_KEY = "emb_params"
NETWORK_MODULE = "networks.lora"  # kohya sd-scripts' module name for plain LoRA


def concat_ranks(adapters: list[LoraPairs]) -> LoraPairs:
    """One LoRA equal to the sum of stacked ones: per module A = [A_1; A_2; ...] (rows), B = [B_1 B_2 ...]
    (columns), so B @ A = sum_k B_k @ A_k exactly (each B_k already carries its scale). A module some
    adapter lacks simply gets no block from it."""
    import torch

    modules = sorted({m for pairs in adapters for m in pairs})
    out = {}
    for m in modules:
        present = [pairs[m] for pairs in adapters if m in pairs]
        out[m] = (
            torch.cat([a for a, _ in present], dim=0).contiguous(),
            torch.cat([b for _, b in present], dim=1).contiguous(),
        )
    return out


def rank_of(pairs: LoraPairs) -> int:
    """The rank of a LoRA whose modules all share one (what lfsd writes); else the largest."""
    return max(a.shape[0] for a, _ in pairs.values())


def to_diffusers(pairs: LoraPairs) -> dict:
    """What `StableDiffusionPipeline.load_lora_weights` reads natively: `unet.` + peft keys; no alpha, so
    diffusers sets lora_alpha = r (scale 1) per module."""
    out = {}
    for m, (a, b) in pairs.items():
        out[f"{DIFFUSERS_UNET_PREFIX}{m}.lora_A.weight"] = a
        out[f"{DIFFUSERS_UNET_PREFIX}{m}.lora_B.weight"] = b
    return out


def kohya_name(module: str) -> str:
    """`down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k` ->
    `lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k` (kohya sd-scripts trains SD 1.x
    on diffusers' UNet, so its names are the diffusers module path with dots made underscores)."""
    return KOHYA_UNET_PREFIX + module.replace(".", "_")


def to_kohya(pairs: LoraPairs) -> dict:
    """kohya/A1111 keys: lora_down = A, lora_up = B, alpha = rank (scale alpha / dim = 1)."""
    import torch

    out = {}
    for m, (a, b) in pairs.items():
        name = kohya_name(m)
        out[f"{name}.lora_down.weight"] = a
        out[f"{name}.lora_up.weight"] = b
        out[f"{name}.alpha"] = torch.tensor(float(a.shape[0]), dtype=a.dtype)
    return out


def ti_diffusers(tokens: dict) -> dict:
    """{token: (D,)} for every token: diffusers' layout (one key per file loads with no `token=`)."""
    return {t: e.reshape(-1).contiguous() for t, e in tokens.items()}


def ti_a1111(embedding) -> dict:
    """A1111's safetensors embedding: one (n_vectors, D) tensor under `emb_params`; A1111 and ComfyUI name
    the embedding after the file, diffusers needs `token=`."""
    return {A1111_EMBEDDING_KEY: embedding.reshape(1, -1).contiguous()}


def safetensors_hashes(tensors: dict) -> tuple[str, str]:
    """(sshs_model_hash, sshs_legacy_hash) as kohya sd-scripts precalculates them and A1111 reads them:
    sha256 of the serialized tensor data (the header, hence the metadata, excluded), and the first 8 hex
    of sha256 over bytes 0x100000..0x110000 of the file."""
    from safetensors.torch import save

    data = save(tensors)
    header = int.from_bytes(data[:8], "little")
    return hashlib.sha256(data[8 + header :]).hexdigest(), hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]


def common_metadata(
    *,
    title: str,
    tokens: list[str],
    class_words: list[str],
    base: dict,
    model_name: str,
    model_version: str,
    steps: list[int | None],
    kind: str,
) -> dict[str, str]:
    """The keys every exported file carries (strings only, as safetensors requires): kohya `ss_*` where
    kohya has one, `modelspec.*` where the SAI model spec has one, `lfsd.*` for the rest. `kind` is
    `lora` or `textual-inversion`; `base` holds name, hash, ss_version, architecture, resolution."""
    known = [s for s in steps if s is not None]
    meta = {
        "ss_output_name": title,
        "ss_sd_model_name": base["name"],
        "ss_sd_model_hash": base["hash"],
        "ss_base_model_version": base["ss_version"],
        "ss_tag_frequency": json.dumps({title: {t: 1 for t in tokens}}),
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": f"{base['architecture']}/{kind}",
        "modelspec.implementation": "https://github.com/huggingface/diffusers",
        "modelspec.title": title,
        "modelspec.trigger_phrase": ", ".join(tokens),
        "lfsd.model_name": model_name,
        "lfsd.model_version": model_version,
        "lfsd.token": ",".join(tokens),
        "lfsd.class_word": ",".join(class_words),
        "lfsd.base_hash": base["hash"],
        "lfsd.base_name": base["name"],
    }
    if base.get("resolution"):
        meta["modelspec.resolution"] = f"{base['resolution']}x{base['resolution']}"
    if known:
        meta["ss_max_train_steps"] = str(sum(known))
    return meta


def lora_metadata(common: dict[str, str], pairs: LoraPairs, tensors: dict, concepts: list[dict]) -> dict[str, str]:
    """`common` plus what describes the LoRA itself: dim/alpha/module (kohya), the file's own hashes
    (kohya/A1111 `sshs_*`), and per-concept rank/steps (`lfsd.concepts`, JSON)."""
    rank = rank_of(pairs)
    model_hash, legacy_hash = safetensors_hashes(tensors)
    return {
        **common,
        "ss_network_module": NETWORK_MODULE,
        "ss_network_dim": str(rank),
        "ss_network_alpha": str(rank),
        "sshs_model_hash": model_hash,
        "sshs_legacy_hash": legacy_hash,
        "lfsd.scale": "folded into lora_B (alpha = rank: every loader applies scale 1)",
        "lfsd.concepts": json.dumps(concepts),
    }
