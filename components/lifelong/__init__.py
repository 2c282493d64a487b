"""The lifelong model as data: a frozen base plus, per learned concept, one K/V update and one token.

    ledger       the ordered chain of concepts (what was learned, where each piece lives, on which base)
    checkpoint   one task's files on disk: its LoRA or K/V delta and its token embedding (+ the ledger)
    model        theta_k built from a chain; the operations a task performs on it (begin, teacher view, save)
    lora_pairs   a task's LoRA file as numbers, {module: (A, scale * B)}, read the way peft wrote it

No training code lives here: training, evaluation, the registry and the workspace all read and write
the chain through this package, and it imports only `components.model` (and the typed config).
Operations on whole chains (folding adapters, removing a concept, exporting) belong here too.
"""

# Names are loaded on first use: the ledger alone (what a workspace reads) needs no model library.
_WHERE = {
    **dict.fromkeys(
        (
            "EMBEDS_FILE",
            "KV_DIR",
            "KV_WEIGHTS",
            "LORA_DIR",
            "LORA_TARGETS",
            "LORA_WEIGHTS",
            "adapter_name",
            "kv_layers",
        ),
        "checkpoint",
    ),
    **dict.fromkeys(
        (
            "LEDGER_FILE",
            "Ledger",
            "LedgerEntry",
            "folder_hash",
            "read_ledger",
            "relativize_ledger",
            "BaseMismatch",
            "verify_base",
        ),
        "ledger",
    ),
    "LifelongModel": "model",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"components.lifelong.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
