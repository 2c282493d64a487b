"""A real CLIP BPE tokenizer built offline, and placeholder tokens for learned concepts.

The vocabulary file ships inside the open-clip-torch wheel (MIT, see assets/LICENSE-open_clip-bpe.txt);
token ids are identical to OpenAI CLIP's, so a real Stable Diffusion tokenizer is a drop-in.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import threading
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


_PARSED: dict[str, object] = {}  # content digest of a tokenizer folder -> its tokenizer, parsed once
_PARSED_LOCK = threading.Lock()
_PARSED_MAX = 4  # distinct tokenizer folders kept (one per base a process loads: a migration has two)


def _folder_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in folder.iterdir() if p.is_file()):
        h.update(f.name.encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def load_tokenizer(folder: Path):
    """A saved CLIP tokenizer: parsed once per process and content, then each call gets its own copy.

    Why: `CLIPTokenizer.from_pretrained` turns tokenizer.json into ~140 k small Python objects and keeps
    half of them (the 49 k merge tuples of `_merges`, which only its __init__ reads, to build the Rust BPE
    model). A serving replica loads a version at every swap while the old one still serves; those objects,
    made while the old version's were alive, pin Python's allocator arenas and the replica's RSS rose by
    ~27 MiB that never came back (docs/results.md, "Serving"). A deep copy of a parsed tokenizer is made
    by its Rust backend (one JSON string), with no Python object per merge, and each caller may add its
    concept tokens to its copy."""
    from transformers import CLIPTokenizer

    folder = Path(folder)
    key = _folder_digest(folder)
    with _PARSED_LOCK:
        parsed = _PARSED.get(key)
        if parsed is None:
            parsed = CLIPTokenizer.from_pretrained(folder)
            if isinstance(getattr(parsed, "_merges", None), list):
                parsed._merges = []  # built into the Rust model already; nothing reads it after __init__
            if len(_PARSED) >= _PARSED_MAX:
                _PARSED.pop(next(iter(_PARSED)))
            _PARSED[key] = parsed
    return copy.deepcopy(parsed)


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
