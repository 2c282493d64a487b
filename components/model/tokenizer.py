"""A real CLIP BPE tokenizer built offline, and placeholder tokens for learned concepts.

The vocabulary file ships inside the open-clip-torch wheel (MIT, see assets/LICENSE-open_clip-bpe.txt);
token ids are identical to OpenAI CLIP's, so a real Stable Diffusion tokenizer is a drop-in.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import torch

BPE_VOCAB = Path(__file__).parent / "assets" / "bpe_simple_vocab_16e6.txt.gz"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP reversible byte -> unicode map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def build_clip_tokenizer(model_max_length: int):
    """The 49,408-token CLIP tokenizer from the bundled BPE merges (no hub access)."""
    from transformers import CLIPTokenizer

    with gzip.open(BPE_VOCAB) as f:
        lines = f.read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1 : 49152 - 256 - 2 + 1]]
    vocab = list(_bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(
        vocab={tok: i for i, tok in enumerate(vocab)},
        merges=merges,
        model_max_length=model_max_length,
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )


def placeholder_token(concept_name: str) -> str:
    return f"<{concept_name}>"


def add_placeholder_token(tokenizer, text_encoder, concept_name: str, class_word: str) -> int:
    """Add `<concept_name>` to the vocabulary, its embedding initialised from the class word's.

    Returns the new token id. The class word's embedding is the mean of its BPE pieces.
    """
    token = placeholder_token(concept_name)
    if token in tokenizer.get_vocab():
        raise ValueError(f"placeholder token {token} already exists")
    tokenizer.add_tokens([token])
    token_id = tokenizer.convert_tokens_to_ids(token)
    class_ids = tokenizer(class_word, add_special_tokens=False).input_ids
    text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    emb = text_encoder.get_input_embeddings().weight
    with torch.no_grad():
        emb[token_id] = emb[class_ids].mean(dim=0)
    return token_id
