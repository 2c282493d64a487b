"""The training loop of one lifelong task, free of any launcher: theta_{k-1} + C_k -> theta_k.

`train_task` begins the task on the model (new token + new K/V update), builds the LFS objective
(`lfs_loss.py`) and runs AdamW on the task's parameters only. It runs as it is in-process (tests,
benchmarks) and inside a Ray Train worker (`components/ray_train/worker.py`, for a one-task fit or a
warm worker group), which passes `WorkerHooks`: a resumable state every `checkpoint_every` steps, a
state to resume from, a gradient all-reduce and per-worker data. Every launcher (in-process, one fit
per task, warm group) also passes an `on_step` callback that moves a progress bar.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from components.config import TrainingConfig
from components.device import CPU, Placement
from components.lifelong import LifelongModel
from components.training import resume as resumable
from components.training.concept import Concept
from components.training.lfs_loss import LFSObjective
from components.training.methods import Method, icgen_status

Report = Callable[[dict], None]


@dataclass
class TaskResult:
    checkpoint: Path
    seconds: float
    step_seconds: float  # median wall time of one optimisation step
    losses: list[dict] = field(default_factory=list)
    relevant_prompts: list[str] = field(default_factory=list)
    resumed_from_step: int = 0  # > 0: the run continued from a resumable checkpoint taken after this step
    wall_seconds: float = 0.0  # Ray runs: the whole call as the driver saw it (0 in-process)
    worker_nodes: list[str] = field(default_factory=list)  # Ray runs: the node id each rank ran on, in rank order
    worker_pid: int = 0  # Ray runs: rank 0's process (the same for every task of a warm worker group)


@dataclass
class WorkerHooks:
    """What a launcher adds to the loop (all off by default): fault tolerance, data parallelism, progress."""

    resume: dict | None = None  # a state an earlier `checkpoint_cb` got: continue at its step + 1
    checkpoint_cb: Callable[[int, dict], None] | None = None  # (step, state) every `checkpoint_every` steps
    checkpoint_every: int = 0
    grad_sync: Callable[[list[torch.nn.Parameter]], None] | None = None  # between backward() and step()
    data_seed: int | None = None  # reseeds batch sampling after the shared initialisation
    on_step: Callable[[int], None] | None = None  # each finished step, after its report (a bar's position)

    def checkpoint_due(self, step: int, last: int) -> bool:
        """A resumable state after `step`: every `checkpoint_every` steps, never after the last one."""
        every = self.checkpoint_every
        return self.checkpoint_cb is not None and every > 0 and step % every == 0 and step < last


def train_task(
    model: LifelongModel,
    concept: Concept,
    method: Method,
    cfg: TrainingConfig,
    out: Path,
    references: str | None = None,
    report: Report | None = None,
    hooks: WorkerHooks | None = None,
    where: Placement = CPU,
) -> TaskResult:
    """Learn `concept` into `model` in place and write the task checkpoint to `out`.

    `model` must not have begun this task yet. `report` gets the mean losses every `report_every`
    steps; the hooks' `checkpoint_cb` runs before that step's report, never after the last step.
    `where`: the device and precision (frozen weights in it, the task's trainable tensors in fp32)."""
    from components.world.vocabulary import CLASSES

    hooks = hooks or WorkerHooks()
    start = time.time()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    b = model.bundle
    previous = [(f"{e.token} {e.class_word}", e.class_word) for e in model.ledger.entries]  # (subject, class)
    if method.c_lora and cfg.adapter != "lora":
        raise ValueError(f"method c-lora penalises LoRA updates; it needs training.adapter: lora, not {cfg.adapter!r}")
    entry, token_id = model.begin_task(
        concept.name,
        concept.class_word,
        references or str(concept.folder),
        str(out),
        cfg.lora_rank,
        cfg.adapter,
        fold_frozen=not method.c_lora,
    )
    b.place(where)
    if cfg.gradient_checkpointing:
        b.unet.enable_gradient_checkpointing()
    with b.autocast():
        objective = LFSObjective(model, concept, method, cfg, list(cfg.class_candidates or CLASSES), previous)

    opt, hook, update, emb = _optimiser(model, entry.task, token_id, cfg)
    scaler = where.grad_scaler()  # fp16 only
    params: list[torch.nn.Parameter] = [*update, emb]
    if hooks.data_seed is not None:  # after the shared init: every worker draws its own batches
        rng = _reseed(hooks.data_seed, objective)
    b.unet.train()
    b.text_encoder.train()
    losses, step_times, first = [], [], 1
    named = {n: p for n, p in b.unet.named_parameters() if any(p is q for q in update)}
    if hooks.resume is not None:
        first, losses = resumable.restore(hooks.resume, entry.task, token_id, named, emb, opt, rng, objective.bank)

    for step in range(first, cfg.steps + 1):
        t0 = time.time()
        with b.autocast():
            loss, terms = objective.loss(step, rng)
        _backward_and_step(opt, loss, scaler, params, hooks.grad_sync)
        step_times.append(time.time() - t0)
        losses.append({"step": step} | terms)
        if hooks.checkpoint_due(step, cfg.steps):
            hooks.checkpoint_cb(
                step, resumable.capture(step, entry.task, token_id, named, emb, opt, rng, objective.bank, losses)
            )
        if report and (step % cfg.report_every == 0 or step == cfg.steps):
            report({k: float(np.mean([r[k] for r in losses[-cfg.report_every :]])) for k in terms} | {"step": step})
        if hooks.on_step is not None:
            hooks.on_step(step)
    hook.remove()
    if cfg.gradient_checkpointing:
        b.unet.disable_gradient_checkpointing()
    b.unet.eval()
    b.text_encoder.eval()
    b.requires_grad_(False)
    seconds = time.time() - start
    step_seconds = float(np.median(step_times[1:] if len(step_times) > 1 else step_times)) if step_times else 0.0
    extra = {"method": method.name, "steps": cfg.steps, "seconds": seconds, "step_seconds": step_seconds}
    extra |= {"relevant_prompts": objective.relevant, "icgen": icgen_status(method.name, b.has_context_path)}
    model.save_task(out, token_id, extra=extra | {"final": losses[-1]})
    return TaskResult(Path(out), seconds, step_seconds, losses, objective.relevant, resumed_from_step=first - 1)


def _backward_and_step(opt, loss: torch.Tensor, scaler, params: list[torch.nn.Parameter], grad_sync) -> None:
    """One update: backward (loss scaled in fp16), the workers' gradient all-reduce, the optimiser step."""
    opt.zero_grad(set_to_none=True)
    (scaler.scale(loss) if scaler else loss).backward()
    if grad_sync is not None:
        grad_sync(params)
    if scaler:
        scaler.step(opt)
        scaler.update()
    else:
        opt.step()


def _reseed(seed: int, objective: LFSObjective) -> np.random.Generator:
    """A worker's own batch stream after the shared initialisation (numpy, torch and the KD bank)."""
    torch.manual_seed(seed)
    if objective.bank is not None:
        objective.bank.generator.manual_seed(seed)
    return np.random.default_rng(seed)


def _optimiser(model: LifelongModel, task: int, token_id: int, cfg: TrainingConfig):
    """AdamW on the task's update (its LoRA, or the K/V weights with full-kv) and on the text encoder's
    embedding table, whose gradient is masked so that only the new token's row learns.
    Returns (optimiser, the mask's hook handle, the update's parameters, the embedding table)."""
    emb = model.bundle.text_encoder.get_input_embeddings().weight
    row_mask = torch.zeros(emb.shape[0], 1, device=emb.device)
    row_mask[token_id] = 1.0
    hook = emb.register_hook(lambda g: g * row_mask)
    update = model.task_parameters(task)
    opt = torch.optim.AdamW(
        [{"params": update, "lr": cfg.lr}, {"params": [emb], "lr": cfg.token_lr, "weight_decay": 0.0}], weight_decay=0.0
    )
    return opt, hook, update, emb
