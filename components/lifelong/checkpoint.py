"""One task's checkpoint on disk (`checkpoints/NN-name/`): only what the task changed.

    unet_lora/pytorch_lora_weights.safetensors   the task's LoRA on cross-attention K/V (diffusers format)
 or unet_kv/kv_delta.safetensors                  full-K/V tasks: module name -> W_k - W_{k-1} (float16)
    learned_embeds.safetensors                   the task's token embedding (textual-inversion format)
    ledger.json                                  the chain up to and including this task
    training.json                                how the task was trained (method, steps, seconds, losses)

Never a copy of the base: the ledger names it by content hash.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from components.checksums import CorruptFile, file_digest
from components.lifelong.ledger import LEDGER_FILE, Ledger, LedgerEntry
from components.lifelong.lora_pairs import lora_scale, peft_pairs
from components.model.tokenizer import add_placeholder_token

LORA_DIR = "unet_lora"
LORA_WEIGHTS = "pytorch_lora_weights.safetensors"  # what diffusers save_lora_adapter writes
EMBEDS_FILE = "learned_embeds.safetensors"
KV_DIR = "unet_kv"
KV_WEIGHTS = "kv_delta.safetensors"
KV_DELTA_DTYPE = torch.float16  # how a full-K/V task's delta is stored (LifelongModel.save_task says why)
TRAINING_FILE = "training.json"
LORA_TARGETS = ["attn2.to_k", "attn2.to_v"]  # cross-attention key/value projections


def task_files(entry: LedgerEntry) -> list[str]:
    """The weight files of a task's checkpoint, as paths inside it."""
    weights = f"{KV_DIR}/{KV_WEIGHTS}" if entry.adapter == "full-kv" else f"{LORA_DIR}/{LORA_WEIGHTS}"
    return [weights, EMBEDS_FILE]


def verify_task_files(entry: LedgerEntry) -> None:
    """CorruptFile unless each weight file of the task hashes to what its ledger entry recorded when it was
    written (entries from before the check carry no hashes and are read as they are)."""
    for rel, expected in entry.sha256.items():
        path = Path(entry.checkpoint) / rel
        found = file_digest(path)
        if found != expected:
            where = f"the ledger entry of task {entry.task} ({entry.name})"
            raise CorruptFile(path, "sha256", expected, found, where, "restore the checkpoint with `lfsd pull`")


def adapter_name(task: int) -> str:
    return f"task{task}"


def kv_layers(unet: torch.nn.Module) -> dict[str, torch.nn.Linear]:
    """The cross-attention K/V projections by module name; under a peft LoRA wrapper, its base layer
    (whose weight is what a full-K/V task trains and what its delta is added to)."""
    out = {}
    for name, module in unet.named_modules():
        if any(name.endswith(t) for t in LORA_TARGETS):
            out[name] = getattr(module, "base_layer", module)
    return out


def add_token(bundle, entry: LedgerEntry, embedding: torch.Tensor | None = None) -> int:
    """Add the entry's placeholder token (initialised from its class word, or set to `embedding`)."""
    token_id = add_placeholder_token(bundle.tokenizer, bundle.text_encoder, entry.name, entry.class_word)
    if embedding is not None:
        with torch.no_grad():
            bundle.text_encoder.get_input_embeddings().weight[token_id] = embedding
    return token_id


def add_tokens(bundle, entries: list[LedgerEntry]) -> list[int]:
    """Every entry's token at once, each set to its saved embedding; returns their ids (ledger order, the
    ids one-at-a-time adds would give). Why at once: each resize copies the whole embedding table (SD's
    49,408 x 768), so k resizes made loading theta_k O(k) in copies."""
    from safetensors.torch import load_file

    tokenizer, text_encoder = bundle.tokenizer, bundle.text_encoder
    tokens = [e.token for e in entries]
    vocab = tokenizer.get_vocab()  # a fresh dict per call (25 ms on CLIP's): once
    taken = [t for t in tokens if t in vocab]
    if taken or len(set(tokens)) != len(tokens):
        raise ValueError(f"placeholder token {(taken or tokens)[0]} already exists")
    vectors = [load_file(Path(e.checkpoint) / EMBEDS_FILE)[e.token] for e in entries]
    tokenizer.add_tokens(tokens)
    ids = tokenizer.convert_tokens_to_ids(tokens)
    text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    weight = text_encoder.get_input_embeddings().weight
    with torch.no_grad():
        for token_id, vector in zip(ids, vectors):
            weight[token_id] = vector
    return ids


def add_lora_delta(layers: dict[str, torch.nn.Linear], ckpt: Path) -> None:
    """W += scale * B @ A on each K/V layer (`kv_layers(unet)`, found once per chain, not per task) the
    task's LoRA file adapts: what its peft adapter adds to W x, and what peft's own merge computes (same
    order, same products), without injecting an adapter."""
    import json

    from safetensors import safe_open

    path = Path(ckpt) / LORA_DIR / LORA_WEIGHTS
    with safe_open(str(path), framework="pt") as f:
        config = (f.metadata() or {}).get("lora_adapter_metadata")
        state = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    pairs = peft_pairs(state, lora_scale(json.loads(config) if config else None))
    unknown = sorted(set(pairs) - set(layers))
    if unknown:
        raise ValueError(f"{path}: LoRA module {unknown[0]} is not a cross-attention K/V layer of this base")
    with torch.no_grad():
        for module, (a, b) in pairs.items():
            weight = layers[module].weight
            weight += (b @ a).to(weight.dtype)


def add_kv_delta(unet: torch.nn.Module, delta: dict[str, torch.Tensor], where: Path) -> None:
    layers = kv_layers(unet)
    if sorted(delta) != sorted(layers):
        raise ValueError(f"{where}: K/V delta names do not match this base's cross-attention layers")
    with torch.no_grad():
        for name, d in delta.items():
            layers[name].weight += d.to(layers[name].weight.dtype)


def apply_task(bundle, entry: LedgerEntry) -> None:
    """Apply a learned task to `bundle`: its token, then its LoRA (as a peft adapter) or its K/V delta."""
    from safetensors.torch import load_file

    ckpt = Path(entry.checkpoint)
    add_token(bundle, entry, load_file(ckpt / EMBEDS_FILE)[entry.token])
    if entry.adapter == "full-kv":
        add_kv_delta(bundle.unet, load_file(ckpt / KV_DIR / KV_WEIGHTS), ckpt)
    else:
        bundle.unet.load_lora_adapter(
            str(ckpt / LORA_DIR), weight_name=LORA_WEIGHTS, adapter_name=adapter_name(entry.task), prefix=None
        )


def write_task(
    out: Path,
    bundle,
    ledger: Ledger,
    token_id: int,
    kv_delta: dict[str, torch.Tensor] | None,
    extra: dict | None = None,
) -> Path:
    """Write the last task of `ledger`: its LoRA (or `kv_delta`), its token row, the ledger, `extra`."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    entry = ledger.entries[-1]
    if entry.adapter == "full-kv":
        (out / KV_DIR).mkdir(exist_ok=True)
        save_file(kv_delta, out / KV_DIR / KV_WEIGHTS)
    else:
        bundle.unet.save_lora_adapter(str(out / LORA_DIR), adapter_name=adapter_name(entry.task))
    embedding = bundle.text_encoder.get_input_embeddings().weight[token_id].detach().clone()
    save_file({entry.token: embedding.contiguous()}, out / EMBEDS_FILE)
    entry.sha256 = {rel: file_digest(out / rel) for rel in task_files(entry)}
    ledger.save(out / LEDGER_FILE)
    if extra:
        (out / TRAINING_FILE).write_text(json.dumps(extra, indent=2))
    return out
