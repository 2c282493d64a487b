"""The lifelong model as data: a frozen base plus, per learned concept, one K/V update and one token.

    ledger       the ordered chain of concepts (what was learned, where each piece lives, on which base)
    checkpoint   one task's files on disk: its LoRA or K/V delta and its token embedding (+ the ledger)
    model        theta_k built from a chain; the operations a task performs on it (begin, teacher view, save)

No training code lives here: training, evaluation, the registry and the workspace all read and write
the chain through this package, and it imports only `components.model` (and the typed config).
Operations on whole chains (folding adapters, removing a concept, exporting) belong here too.
"""

from components.lifelong.checkpoint import (
    EMBEDS_FILE, KV_DIR, KV_WEIGHTS, LEDGER_FILE, LORA_DIR, LORA_TARGETS, LORA_WEIGHTS, adapter_name, kv_layers,
)
from components.lifelong.ledger import Ledger, LedgerEntry, folder_hash, read_ledger, relativize_ledger
from components.lifelong.model import LifelongModel

__all__ = [
    "EMBEDS_FILE", "KV_DIR", "KV_WEIGHTS", "LEDGER_FILE", "LORA_DIR", "LORA_TARGETS", "LORA_WEIGHTS", "Ledger",
    "LedgerEntry", "LifelongModel", "adapter_name", "folder_hash", "kv_layers", "read_ledger", "relativize_ledger",
]
