"""LoRA and textual-inversion file layouts other tools read, and the metadata they show.

Why a module of its own: lfsd stores a task's LoRA as peft writes it (`<module>.lora_A.weight`,
`<module>.lora_B.weight`, scale = lora_alpha / r) and its token as {token: vector}. Other tools key the
same numbers differently:

    diffusers  unet.<module>.lora_A.weight / .lora_B.weight   (no alpha: loaders apply scale 1)
    kohya      lora_unet_<module with _>.lora_down.weight / .lora_up.weight / .alpha   (scale alpha / dim)
    TI         diffusers {token: (1, D)};  A1111 {"emb_params": (1, D)} (the trigger is the file's name)

An embedding is always (1, D), one row per vector: kohya (gen_img) and A1111 count vectors as rows, so a
bare (D,) reads there as D one-number vectors; diffusers reads (1, D) as one token too.

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
SAI_MODEL_SPEC = "1.0.1"  # what kohya's library/sai_model_spec.py writes
IMPL_DIFFUSERS = "diffusers"  # kohya's modelspec.implementation for an SD 1.x/2.x LoRA ...
IMPL_STABILITY_AI = "https://github.com/Stability-AI/generative-models"  # ... and for an embedding


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
    """{token: (1, D)} for every token: diffusers' layout (one key per file loads with no `token=`), one
    row per vector so kohya and A1111 read one vector, not D."""
    return {t: e.reshape(1, -1).contiguous() for t, e in tokens.items()}


def ti_a1111(embedding) -> dict:
    """A1111's safetensors embedding: one (n_vectors, D) tensor under `emb_params`; A1111 and ComfyUI name
    the embedding after the file, diffusers needs `token=`."""
    return {A1111_EMBEDDING_KEY: embedding.reshape(1, -1).contiguous()}


def safetensors_hashes(tensors: dict, metadata: dict[str, str]) -> tuple[str, str]:
    """(sshs_model_hash, sshs_legacy_hash) as kohya sd-scripts precalculates them (library/train_util.py
    `precalculate_safetensors_hashes`) and A1111's additional-networks reads them: the tensors serialized
    with only the `ss_*` metadata, then sha256 of the data after the header, and the first 8 hex of sha256
    over bytes 0x100000..0x110000 (which, past 1 MiB, are tensor data shifted by that header)."""
    from safetensors.torch import save

    data = save(tensors, {k: v for k, v in metadata.items() if k.startswith("ss_")})
    header = int.from_bytes(data[:8], "little")
    return hashlib.sha256(data[8 + header :]).hexdigest(), hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]


def base_model_version(base: dict) -> str:
    """kohya's `ss_base_model_version` (library/model_util.py `get_model_version_str_for_sd1_sd2`):
    sd_v1 / sd_v2, `_v` appended for a v-prediction base; lfsd's own bases keep their tag."""
    if base["ss_version"] not in ("sd_v1", "sd_v2"):
        return base["ss_version"]
    return base["ss_version"] + ("_v" if base.get("prediction_type") == "v" else "")


def modelspec(base: dict, kind: str, title: str, tokens: list[str], date: str) -> dict[str, str]:
    """The `modelspec.*` keys kohya sd-scripts writes (library/sai_model_spec.py, spec 1.0.1): its
    implementation is `diffusers` for an SD 1.x/2.x LoRA and Stability's repository for an embedding;
    SD 2.x with v-prediction is `stable-diffusion-v2-768-v`."""
    arch = base["architecture"]
    if arch == "stable-diffusion-v2-512" and base.get("prediction_type") == "v":
        arch = "stable-diffusion-v2-768-v"
    meta = {
        "modelspec.sai_model_spec": SAI_MODEL_SPEC,
        "modelspec.architecture": f"{arch}/{kind}",
        "modelspec.implementation": IMPL_DIFFUSERS if kind == "lora" else IMPL_STABILITY_AI,
        "modelspec.title": title,
        "modelspec.date": date,
        "modelspec.trigger_phrase": ", ".join(tokens),
    }
    if base.get("prediction_type"):
        meta["modelspec.prediction_type"] = base["prediction_type"]
    if base.get("resolution"):
        meta["modelspec.resolution"] = f"{base['resolution']}x{base['resolution']}"
    return meta


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
    date: str,
) -> dict[str, str]:
    """The keys every exported file carries (strings only, as safetensors requires): kohya `ss_*` where
    kohya has one (`ss_v2` as kohya writes it: "True"/"False", what A1111/Forge read the SD version from),
    `modelspec.*` as kohya writes it, `lfsd.*` for the rest. `kind` is `lora` or `textual-inversion`;
    `base` holds name, hash, ss_version, architecture, resolution, prediction_type; `date` is ISO 8601."""
    known = [s for s in steps if s is not None]
    meta = {
        "ss_output_name": title,
        "ss_sd_model_name": base["name"],
        "ss_sd_model_hash": base["hash"],
        "ss_v2": str(base["ss_version"] == "sd_v2"),
        "ss_base_model_version": base_model_version(base),
        "ss_tag_frequency": json.dumps({title: {t: 1 for t in tokens}}),
        **modelspec(base, kind, title, tokens, date),
        "lfsd.model_name": model_name,
        "lfsd.model_version": model_version,
        "lfsd.token": ",".join(tokens),
        "lfsd.class_word": ",".join(class_words),
        "lfsd.base_hash": base["hash"],
        "lfsd.base_name": base["name"],
    }
    if known:
        meta["ss_max_train_steps"] = str(sum(known))
    return meta


def lora_metadata(common: dict[str, str], pairs: LoraPairs, tensors: dict, concepts: list[dict]) -> dict[str, str]:
    """`common` plus what describes the LoRA itself: dim/alpha/module (kohya), the file's own hashes
    (kohya/A1111 `sshs_*`), and per-concept rank/steps (`lfsd.concepts`, JSON)."""
    rank = rank_of(pairs)
    meta = {
        **common,
        "ss_network_module": NETWORK_MODULE,
        "ss_network_dim": str(rank),
        "ss_network_alpha": str(rank),
        "lfsd.scale": "folded into lora_B (alpha = rank: every loader applies scale 1)",
        "lfsd.concepts": json.dumps(concepts),
    }
    meta["sshs_model_hash"], meta["sshs_legacy_hash"] = safetensors_hashes(tensors, meta)
    return meta
