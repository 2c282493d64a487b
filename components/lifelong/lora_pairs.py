"""A task's LoRA file as numbers: {module: (A, scale * B)}, read the way peft wrote it.

Why a module of its own, in `lifelong`: loading theta_k folds every task's B @ A straight into the K/V
weights (`checkpoint.add_lora_delta`), and exporting re-keys the same pairs for other tools
(`registry.lora_formats`). Both read the file through here. No torch or safetensors at import time.
"""

from __future__ import annotations

import math

LoraPairs = dict  # module name -> (A (r, in), B (out, r)), scale already folded into B
DIFFUSERS_UNET_PREFIX = "unet."


class LoraFormatError(ValueError):
    """A LoRA state dict that is not the layout lfsd writes (names which part is wrong)."""


def lora_scale(adapter_config: dict | None) -> float:
    """The factor peft multiplies B @ A by, from the adapter config diffusers' `save_lora_adapter` stores in
    the file's metadata (`lora_adapter_metadata`). No config: diffusers' convention, alpha = rank, scale 1.
    Per-module rank/alpha patterns are refused: lfsd never writes them, and one scale per file is what
    folding assumes."""
    if not adapter_config:
        return 1.0
    if adapter_config.get("rank_pattern") or adapter_config.get("alpha_pattern"):
        raise LoraFormatError("per-module rank_pattern/alpha_pattern is not supported")
    r, alpha = float(adapter_config["r"]), float(adapter_config["lora_alpha"])
    return alpha / math.sqrt(r) if adapter_config.get("use_rslora") else alpha / r


def peft_pairs(state: dict, scale: float = 1.0) -> LoraPairs:
    """{module: (A, scale * B)} from a peft/diffusers LoRA state dict (`<module>.lora_A.weight`, optionally
    behind a `unet.` prefix). Raises LoraFormatError on a key of any other kind or an unpaired matrix."""
    mats: dict[str, dict[str, object]] = {}
    for key, value in state.items():
        name = key.removeprefix(DIFFUSERS_UNET_PREFIX)
        for part in ("lora_A", "lora_B"):
            suffix = f".{part}.weight"
            if name.endswith(suffix):
                mats.setdefault(name[: -len(suffix)], {})[part] = value
                break
        else:
            raise LoraFormatError(f"unexpected key {key!r} (expected <module>.lora_A.weight / .lora_B.weight)")
    if not mats:
        raise LoraFormatError("no LoRA matrices")
    out = {}
    for module, parts in sorted(mats.items()):
        if set(parts) != {"lora_A", "lora_B"}:
            raise LoraFormatError(f"{module}: lora_A and lora_B must both be present")
        a, b = parts["lora_A"], parts["lora_B"]
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
            raise LoraFormatError(f"{module}: lora_A {tuple(a.shape)} and lora_B {tuple(b.shape)} do not chain")
        out[module] = (a.contiguous(), (b * scale).contiguous() if scale != 1.0 else b.contiguous())
    return out
