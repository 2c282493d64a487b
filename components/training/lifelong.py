"""The lifelong model: a frozen base plus, per learned concept, one K/V update and one token.

The K/V update of a task is either a peft LoRA adapter on the UNet's cross-attention K/V (`lora`, the
default: adapters stack, earlier ones stay frozen) or the K/V weights themselves (`full-kv`,
Custom-Diffusion style: the task trains the very weights earlier tasks trained).

A task checkpoint (`checkpoints/NN-name/`) stores only what its task changed: the task's LoRA (diffusers
LoRA format) or its K/V weight delta (`unet_kv/kv_delta.safetensors`, module name -> W_k - W_{k-1}), its
token embedding (textual-inversion format), and the ledger: the ordered list of every concept learned so
far, where each one's checkpoint and references live, and the base's identity (a content hash, never a
copy of the base).
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from components.config import ADAPTERS
from components.model.pipeline import DiffusionBundle, load
from components.model.tokenizer import add_placeholder_token

LORA_DIR = "unet_lora"
LORA_WEIGHTS = "pytorch_lora_weights.safetensors"  # what diffusers save_lora_adapter writes
EMBEDS_FILE = "learned_embeds.safetensors"
LEDGER_FILE = "ledger.json"
LORA_TARGETS = ["attn2.to_k", "attn2.to_v"]  # cross-attention key/value projections
KV_DIR = "unet_kv"
KV_WEIGHTS = "kv_delta.safetensors"


@dataclass
class LedgerEntry:
    task: int
    name: str
    class_word: str
    token: str
    references: str  # folder of the concept's versioned dataset (used at generation time only)
    checkpoint: str  # folder of the checkpoint that learned it
    adapter: str = "lora"  # how the task changed the UNet's K/V: a LoRA adapter or a full K/V delta


@dataclass
class Ledger:
    base: str
    base_hash: str
    method: str
    entries: list[LedgerEntry] = field(default_factory=list)

    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def read(cls, path: Path) -> "Ledger":
        raw = json.loads(Path(path).read_text())
        return cls(raw["base"], raw["base_hash"], raw["method"], [LedgerEntry(**e) for e in raw["entries"]])


def folder_hash(folder: Path) -> str:
    """sha256 over (relative path, content) of every file: the base's identity."""
    h = hashlib.sha256()
    folder = Path(folder)
    for p in sorted(q for q in folder.rglob("*") if q.is_file()):
        h.update(p.relative_to(folder).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def resolve_ledger_path(path: str, checkpoint: Path) -> Path:
    """A ledger path as written: absolute, relative to the working directory, or relative to the
    workspace that holds `checkpoints/<this checkpoint>` (repo-relative, as the pipeline writes them)."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    return Path(checkpoint).resolve().parent.parent / p


def relativize_ledger(checkpoint: Path, root: Path) -> Ledger:
    """Rewrite `checkpoint`'s ledger with paths relative to the workspace `root`, so a clone restored
    with `dvc pull` anywhere resolves them (see `resolve_ledger_path`)."""
    root = Path(root).resolve()
    ledger = Ledger.read(Path(checkpoint) / LEDGER_FILE)

    def rel(path: str) -> str:
        p = Path(path).resolve() if path else None
        if p is None:
            return path
        try:
            return p.relative_to(root).as_posix()
        except ValueError:
            return path

    ledger.base = rel(ledger.base)
    for e in ledger.entries:
        e.references, e.checkpoint = rel(e.references), rel(e.checkpoint)
    ledger.save(Path(checkpoint) / LEDGER_FILE)
    return ledger


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


class LifelongModel:
    """A base bundle with the adapters and tokens of every task so far applied."""

    def __init__(self, bundle: DiffusionBundle, ledger: Ledger):
        self.bundle, self.ledger = bundle, ledger
        self._kv_before: dict[str, torch.Tensor] = {}  # K/V weights as the current task found them

    @classmethod
    def from_base(cls, base_dir: Path, method: str) -> "LifelongModel":
        return cls(load(base_dir), Ledger(str(base_dir), folder_hash(base_dir), method))

    @classmethod
    def from_checkpoint(cls, checkpoint: Path, base_dir: Path | None = None) -> "LifelongModel":
        """Rebuild theta_k: the base (verified by hash) plus every task's LoRA and token, in order."""
        from safetensors.torch import load_file

        ledger = Ledger.read(Path(checkpoint) / LEDGER_FILE)
        base_dir = Path(base_dir) if base_dir else resolve_ledger_path(ledger.base, checkpoint)
        for e in ledger.entries:  # in memory every path is absolute; on disk the pipeline keeps them relative
            e.checkpoint = str(resolve_ledger_path(e.checkpoint, checkpoint).resolve())
            e.references = str(resolve_ledger_path(e.references, checkpoint).resolve()) if e.references else ""
        if folder_hash(base_dir) != ledger.base_hash:
            raise ValueError(f"{base_dir}: base hash differs from the one {checkpoint} was trained on")
        model = cls(load(base_dir), Ledger(ledger.base, ledger.base_hash, ledger.method))
        for entry in ledger.entries:
            ckpt = Path(entry.checkpoint)
            embeds = load_file(ckpt / EMBEDS_FILE)
            model._add_token(entry, embeds[entry.token])
            if entry.adapter == "full-kv":
                model._add_kv_delta(load_file(ckpt / KV_DIR / KV_WEIGHTS), ckpt)
            else:
                model.bundle.unet.load_lora_adapter(
                    str(ckpt / LORA_DIR), weight_name=LORA_WEIGHTS, adapter_name=adapter_name(entry.task), prefix=None
                )
            model.ledger.entries.append(entry)
        model._activate(model.adapter_names())
        model.bundle.requires_grad_(False)
        return model.eval()

    def eval(self) -> "LifelongModel":
        self.bundle.eval()
        return self

    def adapter_names(self) -> list[str]:
        """The peft adapters theta_k is made of (full-K/V tasks have none: their delta is in the weights)."""
        return [adapter_name(e.task) for e in self.ledger.entries if e.adapter == "lora"]

    def _add_kv_delta(self, delta: dict[str, torch.Tensor], where: Path) -> None:
        layers = kv_layers(self.bundle.unet)
        if sorted(delta) != sorted(layers):
            raise ValueError(f"{where}: K/V delta names do not match this base's cross-attention layers")
        with torch.no_grad():
            for name, d in delta.items():
                layers[name].weight += d.to(layers[name].weight.dtype)

    def _add_token(self, entry: LedgerEntry, embedding: torch.Tensor | None = None) -> int:
        token_id = add_placeholder_token(self.bundle.tokenizer, self.bundle.text_encoder, entry.name, entry.class_word)
        if embedding is not None:
            with torch.no_grad():
                self.bundle.text_encoder.get_input_embeddings().weight[token_id] = embedding
        return token_id

    def _activate(self, names: list[str]) -> None:
        unet = self.bundle.unet
        if names:
            unet.enable_adapters()
            unet.set_adapters(names)
        elif getattr(unet, "peft_config", None):
            unet.disable_adapters()

    def begin_task(self, name: str, class_word: str, references: str, checkpoint: str, rank: int,
                   adapter: str = "lora") -> tuple[LedgerEntry, int]:
        """Add the new token and a fresh LoRA (or open the K/V weights); only those are trainable.
        Returns (entry, token id)."""
        from peft import LoraConfig

        if adapter not in ADAPTERS:
            raise ValueError(f"unknown adapter {adapter!r}; choose one of {', '.join(ADAPTERS)}")
        if name in self.ledger.names():
            raise ValueError(f"concept {name!r} is already learned")
        task = len(self.ledger.entries) + 1
        entry = LedgerEntry(task, name, class_word, f"<{name}>", references, checkpoint, adapter)
        token_id = self._add_token(entry)
        self.bundle.requires_grad_(False)
        if adapter == "lora":
            self.bundle.unet.add_adapter(
                LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=LORA_TARGETS),
                adapter_name=adapter_name(task),
            )
        if adapter == "full-kv":  # the teacher and the saved delta need the weights as the task found them
            self._kv_before = {n: m.weight.detach().clone() for n, m in kv_layers(self.bundle.unet).items()}
        self.ledger.entries.append(entry)
        self._activate(self.adapter_names())
        self._freeze_all_but_current()
        self.bundle.text_encoder.get_input_embeddings().weight.requires_grad_(True)
        return entry, token_id

    def _freeze_all_but_current(self) -> None:
        trainable = {id(p) for p in self.task_parameters(self.ledger.entries[-1].task)}
        for p in self.bundle.unet.parameters():
            p.requires_grad_(id(p) in trainable)

    def task_parameters(self, task: int) -> list[torch.nn.Parameter]:
        """What task `task` trains in the UNet: its LoRA matrices, or (full-K/V) the K/V weights."""
        entry = self.ledger.entries[task - 1]
        if entry.adapter == "full-kv":
            return [m.weight for m in kv_layers(self.bundle.unet).values()]
        tag = f".{adapter_name(task)}."
        return [p for n, p in self.bundle.unet.named_parameters() if tag in n and "lora_" in n]

    def kv_delta(self) -> dict[str, torch.Tensor]:
        """The current full-K/V task's change: W_k - W_{k-1} per cross-attention K/V layer."""
        return {n: (m.weight.detach() - self._kv_before[n]).contiguous() for n, m in kv_layers(self.bundle.unet).items()}

    @contextmanager
    def as_teacher(self):
        """theta_{k-1} inside theta_k: the current task's adapter is switched off, or (full-K/V) the K/V
        weights are swapped back to what they were before the task (the new token is unused either way)."""
        current = self.ledger.entries[-1]
        if current.adapter == "full-kv":
            layers = kv_layers(self.bundle.unet)
            student = {n: m.weight.detach().clone() for n, m in layers.items()}
            with torch.no_grad():
                for n, m in layers.items():
                    m.weight.copy_(self._kv_before[n])
            try:
                yield
            finally:
                with torch.no_grad():
                    for n, m in layers.items():
                        m.weight.copy_(student[n])
                self._freeze_all_but_current()
            return
        names = self.adapter_names()
        self._activate(names[:-1])
        try:
            yield
        finally:
            self._activate(names)
            self._freeze_all_but_current()

    def save_task(self, out: Path, token_id: int, extra: dict | None = None) -> Path:
        """Write the current (last) task's checkpoint: its LoRA, its token, the full ledger."""
        from safetensors.torch import save_file

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        entry = self.ledger.entries[-1]
        if entry.adapter == "full-kv":
            (out / KV_DIR).mkdir(exist_ok=True)
            save_file(self.kv_delta(), out / KV_DIR / KV_WEIGHTS)
        else:
            self.bundle.unet.save_lora_adapter(str(out / LORA_DIR), adapter_name=adapter_name(entry.task))
        embedding = self.bundle.text_encoder.get_input_embeddings().weight[token_id].detach().clone()
        save_file({entry.token: embedding.contiguous()}, out / EMBEDS_FILE)
        self.ledger.save(out / LEDGER_FILE)
        if extra:
            (out / "training.json").write_text(json.dumps(extra, indent=2))
        return out
