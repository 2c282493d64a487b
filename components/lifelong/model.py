"""theta_k: a base bundle with the token and K/V update of every task so far applied.

The K/V update of a task is either a peft LoRA adapter on the UNet's cross-attention K/V (`lora`, the
default: adapters stack, earlier ones stay frozen; a task may fold the frozen ones into the weights
first, `begin_task(fold_frozen=True)`, so its steps cost the same at any k) or the K/V weights themselves (`full-kv`,
Custom-Diffusion style: the task trains the very weights earlier tasks trained). During a task the
model also serves as its own teacher theta_{k-1} (`as_teacher`): the new update switched off.
For serving, `folded` merges the adapters into the K/V weights: the same theta_k at the cost of the base.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch

from components.config import ADAPTERS
from components.lifelong.checkpoint import (
    KV_DELTA_DTYPE,
    KV_DIR,
    KV_WEIGHTS,
    LORA_TARGETS,
    adapter_name,
    add_kv_delta,
    add_lora_delta,
    add_token,
    add_tokens,
    apply_task,
    kv_layers,
    verify_task_files,
    write_task,
)
from components.lifelong.ledger import Ledger, LedgerEntry, folder_hash, read_ledger, verify_base
from components.model.pipeline import DiffusionBundle, load


class LifelongModel:
    """A base bundle with the adapters and tokens of every task so far applied."""

    def __init__(self, bundle: DiffusionBundle, ledger: Ledger):
        self.bundle, self.ledger = bundle, ledger
        self._kv_before: dict[str, torch.Tensor] = {}  # K/V weights as the current task found them
        self.is_folded = False  # adapters merged into the weights (`folded`): serving only, no more tasks
        self._merged: set[str] = set()  # earlier tasks' adapters merged into the weights by `begin_task`

    @classmethod
    def from_base(cls, base_dir: Path, method: str) -> LifelongModel:
        return cls(load(base_dir), Ledger(str(base_dir), folder_hash(base_dir), method))

    @classmethod
    def from_ledger(
        cls, ledger: Ledger, base_dir: Path | None = None, fold: bool = False, base_checked: bool = False
    ) -> LifelongModel:
        """Rebuild theta_k from a ledger whose paths are absolute: the base (verified by hash) plus every
        task's token and K/V update, in order.

        `fold`: add each task's LoRA straight into the K/V weights as it is read (`add_lora_delta`, what
        `begin_task(fold_frozen=True)` and `folded` compute, bitwise) and all tokens in one resize. Why:
        stacking injects one peft adapter per task over the whole UNet, so loading grew O(k) (0.7 s at
        k = 1, 7.3 s at k = 35 on this machine); folded, it is one base load plus k small reads. The model
        can still begin a task (the earlier ones stay frozen in the weights) but has no per-task adapter
        to switch: C-LoRA, which reads them, loads stacked."""
        from safetensors.torch import load_file

        base_dir = Path(base_dir or ledger.base)
        if not base_checked:  # `base_checked`: the caller hashed every base file against its own record
            verify_base(base_dir, ledger.base_hash)
        for entry in ledger.entries:  # every task's files, before any of them is read
            verify_task_files(entry)
        model = cls(load(base_dir), Ledger(ledger.base, ledger.base_hash, ledger.method, retired=ledger.retired))
        if fold:
            add_tokens(model.bundle, ledger.entries)
            layers = kv_layers(model.bundle.unet)
        for entry in ledger.entries:
            if not fold:
                apply_task(model.bundle, entry)
            elif entry.adapter == "full-kv":
                add_kv_delta(
                    model.bundle.unet, load_file(Path(entry.checkpoint) / KV_DIR / KV_WEIGHTS), Path(entry.checkpoint)
                )
            else:
                add_lora_delta(layers, Path(entry.checkpoint))
                model._merged.add(adapter_name(entry.task))
            model.ledger.entries.append(entry)
        model._activate(model.adapter_names())
        model.bundle.requires_grad_(False)
        return model.eval()

    @classmethod
    def from_checkpoint(cls, checkpoint: Path, base_dir: Path | None = None, fold: bool = False) -> LifelongModel:
        """theta_k of the chain whose newest checkpoint is `checkpoint` (`fold`: see `from_ledger`)."""
        return cls.from_ledger(read_ledger(checkpoint), base_dir, fold=fold)

    def eval(self) -> LifelongModel:
        self.bundle.eval()
        return self

    def adapter_names(self) -> list[str]:
        """The peft adapters theta_k is made of (full-K/V tasks have none: their delta is in the weights)."""
        return [
            adapter_name(e.task)
            for e in self.ledger.entries
            if e.adapter == "lora" and adapter_name(e.task) not in self._merged
        ]

    def _activate(self, names: list[str]) -> None:
        unet = self.bundle.unet
        if names:
            unet.enable_adapters()
            unet.set_adapters(names)
        elif getattr(unet, "peft_config", None):
            unet.disable_adapters()

    def folded(self) -> LifelongModel:
        """Merge every task's LoRA into the K/V weights it adapts and drop the adapter modules (in place;
        returns self): W += s_k B_k A_k for each adapter k, which is what the stack adds to W x anyway.

        Why: with k stacked adapters every cross-attention K/V forward pays k extra low-rank products, so
        generation slows as the chain grows; folded, the UNet is a plain one again and costs what the base
        costs, with the same outputs up to float rounding. Full-K/V tasks are already in the weights and
        stay as they are. Serving only: a folded model cannot begin a task or be its own teacher (both
        switch single adapters on and off), so training keeps the stacked model. The ledger is kept
        (lineage, concept names)."""
        if not self.is_folded:
            self._merge_live_adapters()
        self.is_folded = True
        return self

    def _merge_live_adapters(self) -> None:
        names = self.adapter_names()
        if not names:
            return
        unet = self.bundle.unet
        self._activate(names)  # every adapter on, at the scaling the stacked forward uses
        with torch.no_grad():
            # diffusers' fuse -> peft LoraLayer.merge per wrapped layer (safe: refuses non-finite results);
            # unload swaps each peft wrapper back for its base nn.Linear and forgets the peft config.
            unet.fuse_lora(lora_scale=1.0, safe_fusing=True, adapter_names=names)
            unet.unload_lora()
        self._merged.update(names)

    def _refuse_if_folded(self, what: str) -> None:
        if self.is_folded:
            raise RuntimeError(
                f"cannot {what}: this model's adapters are folded into its weights (serving "
                f"only); rebuild it with LifelongModel.from_ledger to train"
            )

    def begin_task(
        self,
        name: str,
        class_word: str,
        references: str,
        checkpoint: str,
        rank: int,
        adapter: str = "lora",
        fold_frozen: bool = False,
    ) -> tuple[LedgerEntry, int]:
        """Add the new token and a fresh LoRA (or open the K/V weights); only those are trainable.
        Returns (entry, token id).

        `fold_frozen`: first merge the earlier tasks' adapters into the K/V weights (the same theta_{k-1}
        up to float rounding). Why: with k stacked adapters every forward pays k low-rank products, so
        task 50 would train ~2.6x slower than task 1 (benchmarks/fold_speed.py); folded, a task costs
        the same at any k. Off for a method that reads the earlier adapters themselves (C-LoRA's penalty).
        The per-task files are untouched: only the current task is saved, as before."""
        from peft import LoraConfig

        self._refuse_if_folded("begin a task")
        if adapter not in ADAPTERS:
            raise ValueError(f"unknown adapter {adapter!r}; choose one of {', '.join(ADAPTERS)}")
        if name in self.ledger.names():
            raise ValueError(f"concept {name!r} is already learned")
        if fold_frozen:
            self._merge_live_adapters()
        task = self.ledger.next_task()
        entry = LedgerEntry(
            task,
            name,
            class_word,
            f"<{name}>",
            str(Path(references).resolve()),
            str(Path(checkpoint).resolve()),
            adapter,
        )
        token_id = add_token(self.bundle, entry)
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
        entry = next(e for e in self.ledger.entries if e.task == task)
        if entry.adapter == "full-kv":
            return [m.weight for m in kv_layers(self.bundle.unet).values()]
        tag = f".{adapter_name(task)}."
        return [p for n, p in self.bundle.unet.named_parameters() if tag in n and "lora_" in n]

    def kv_delta(self) -> dict[str, torch.Tensor]:
        """The current full-K/V task's change: W_k - W_{k-1} per cross-attention K/V layer."""
        return {
            n: (m.weight.detach() - self._kv_before[n]).contiguous() for n, m in kv_layers(self.bundle.unet).items()
        }

    @contextmanager
    def as_teacher(self):
        """theta_{k-1} inside theta_k: the current task's adapter is switched off, or (full-K/V) the K/V
        weights are swapped back to what they were before the task (the new token is unused either way)."""
        self._refuse_if_folded("act as the teacher")
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
        """Write the current (last) task's checkpoint: its LoRA or K/V delta, its token, the full ledger.

        A full-K/V delta is stored in float16 (`KV_DELTA_DTYPE`) and the live K/V weights are set to the
        weights before the task plus that stored delta, so this model, the next task's teacher and any
        reload from the files are the same theta_k. Why: in float32 the delta is 0.95% of the embedded
        base per task, over the 1%-per-step storage budget with the shots and ledger; float16 halves it,
        at a relative rounding of at most 2^-11 per delta entry (not measured against seed noise)."""
        self._refuse_if_folded("save a task")
        delta = None
        if self.ledger.entries[-1].adapter == "full-kv":
            delta = {n: d.to(KV_DELTA_DTYPE) for n, d in self.kv_delta().items()}
            with torch.no_grad():
                for n, m in kv_layers(self.bundle.unet).items():
                    m.weight.copy_(self._kv_before[n] + delta[n].to(m.weight.dtype))
        return write_task(out, self.bundle, self.ledger, token_id, delta, extra)
