"""One lifelong task: theta_{k-1} + concept C_k -> theta_k, with the method's remedies.

    L = L_denoise(C_k | leave-one-out context if ICGen)  [+ L_denoise(prior images) if prior-preservation]
        + lambda_kd * L_kd(student vs teacher on relevant prompts)   if KD
        + lambda_clora * sum |dW_prev| * dW_new ^2                    if C-LoRA

The loop only reads C_k's own shots. It reports through a callback, so the same function runs
in-process (tests, benchmarks) and inside a Ray Train worker (the pipeline). For the worker it also
takes fault-tolerance and data-parallel hooks (all keyword-only, off by default): `checkpoint_cb`
receives a resumable state every `checkpoint_every` steps, `resume` restores one into the freshly
begun task, `grad_sync` averages gradients across workers, `data_seed` gives each worker its own data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from components.config import TrainingConfig
from components.model.pipeline import encode_prompts
from components.model.sampling import generate
from components.training.concept import Concept
from components.training.lifelong import LifelongModel
from components.training.methods import Method
from components.training.relevant import relevant_prompts
from components.training.teacher import KDBatch, TeacherBank

Report = Callable[[dict], None]
CheckpointCallback = Callable[[int, dict], None]
GradSync = Callable[[list[torch.nn.Parameter]], None]


@dataclass
class TaskResult:
    checkpoint: Path
    seconds: float
    step_seconds: float  # mean wall time of one optimisation step
    losses: list[dict] = field(default_factory=list)
    relevant_prompts: list[str] = field(default_factory=list)
    resumed_from_step: int = 0  # > 0: the run continued from a resumable checkpoint taken after this step
    wall_seconds: float = 0.0  # Ray runs: the whole call as the driver saw it (0 in-process)


def _leave_one_out(images: torch.Tensor, picks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each picked shot, the other shots as references: (B, K-1, 3, H, W) and a mask of ones."""
    k = images.shape[0]
    refs = torch.stack([images[[j for j in range(k) if j != int(i)]] for i in picks])
    return refs, torch.ones(refs.shape[:2])


@torch.no_grad()
def _prior_latents(model: LifelongModel, concept: Concept, cfg: TrainingConfig) -> tuple[torch.Tensor, list[str]]:
    """DreamBooth's offline replay: class images drawn by the frozen previous model before the task."""
    b = model.bundle
    prompts = [f"a {concept.class_word}"] * cfg.prior_images
    with model.as_teacher():
        images = generate(b, prompts, [cfg.seed * 10_000 + i for i in range(cfg.prior_images)],
                          steps=20, guidance_scale=cfg.guidance_scale)
    return b.encode_images(images), prompts


def _clora_penalty(model: LifelongModel, task: int) -> torch.Tensor:
    """Self-regularisation (C-LoRA): the new update is penalised where earlier updates already acted."""
    from peft.tuners.lora import LoraLayer

    total = torch.zeros(())
    new, old = f"task{task}", [f"task{t}" for t in range(1, task)]
    for module in model.bundle.unet.modules():
        if not isinstance(module, LoraLayer) or new not in module.lora_A or not old:
            continue
        delta = lambda n: module.lora_B[n].weight @ module.lora_A[n].weight * module.scaling[n]  # noqa: E731
        with torch.no_grad():
            prev = sum(delta(n).abs() for n in old if n in module.lora_A)
        total = total + ((prev * delta(new)) ** 2).sum()
    return total


def _pack_optimizer(opt: torch.optim.Optimizer, emb: torch.nn.Parameter, token_id: int) -> dict:
    """A detached copy of the optimizer state. The embedding matrix only ever gets a gradient in the
    new token's row (the hook masks the rest), so its Adam moments are zero elsewhere: keep that row."""
    sd = opt.state_dict()
    emb_index = next(i for g, group in zip(sd["param_groups"], opt.param_groups)
                     for i, p in zip(g["params"], group["params"]) if p is emb)
    state = {}
    for i, st in sd["state"].items():
        st = {k: (v.detach().clone() if torch.is_tensor(v) else v) for k, v in st.items()}
        if i == emb_index:
            rows = [k for k, v in st.items() if torch.is_tensor(v) and v.shape == emb.shape]
            st = {k: (v[token_id].clone() if k in rows else v) for k, v in st.items()} | {"__token_row__": rows}
        state[i] = st
    return {"state": state, "param_groups": sd["param_groups"], "emb_shape": list(emb.shape)}


def _unpack_optimizer(packed: dict, opt: torch.optim.Optimizer, token_id: int) -> None:
    state = {}
    for i, st in packed["state"].items():
        st = dict(st)
        for k in st.pop("__token_row__", []):
            full = torch.zeros(packed["emb_shape"], dtype=st[k].dtype)
            full[token_id] = st[k]
            st[k] = full
        state[i] = st
    opt.load_state_dict({"state": state, "param_groups": packed["param_groups"]})


def _bank_state(bank: TeacherBank | None) -> dict | None:
    if bank is None:
        return None
    return {"generator": bank.generator.get_state(), "refreshes": bank.refreshes, "latents": bank.latents.clone(),
            "timesteps": bank.timesteps.clone(), "targets": bank.targets.clone(),
            "point_prompts": list(bank.point_prompts)}


def _restore_bank(bank: TeacherBank, st: dict) -> None:
    bank.generator.set_state(st["generator"])
    bank.refreshes = st["refreshes"]
    bank.latents, bank.timesteps, bank.targets = st["latents"], st["timesteps"], st["targets"]
    bank.point_prompts = list(st["point_prompts"])


def train_task(
    model: LifelongModel,
    concept: Concept,
    method: Method,
    cfg: TrainingConfig,
    out: Path,
    references: str | None = None,
    report: Report | None = None,
    *,
    resume: dict | None = None,
    checkpoint_cb: CheckpointCallback | None = None,
    checkpoint_every: int = 0,
    grad_sync: GradSync | None = None,
    data_seed: int | None = None,
) -> TaskResult:
    """Learn `concept` into `model` in place and write the task checkpoint to `out`.

    `model` must not have begun this task yet: with `resume` (a state an earlier `checkpoint_cb` got),
    the task is begun once as usual and the state (LoRA and token of this task, optimizer, RNGs, KD
    bank, per-step losses) is loaded into its fresh parameters; training continues at state step + 1.
    `checkpoint_cb(step, state)` runs every `checkpoint_every` steps (not after the last one), before
    that step's `report`. `grad_sync(params)` runs between backward() and the optimizer step.
    `data_seed` (data-parallel workers) reseeds the batch sampling after the shared initialisation.
    """
    from components.world.vocabulary import CLASSES

    start = time.time()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    b = model.bundle
    previous_subjects = [f"{e.token} {e.class_word}" for e in model.ledger.entries]
    if method.c_lora and cfg.adapter != "lora":
        raise ValueError(f"method c-lora penalises LoRA updates; it needs training.adapter: lora, not {cfg.adapter!r}")
    entry, token_id = model.begin_task(concept.name, concept.class_word, references or str(concept.folder), str(out),
                                       cfg.lora_rank, cfg.adapter)

    images = concept.load_images(b.vae.config.sample_size)  # (K, 3, H, W): the only files this task reads
    with torch.no_grad():
        latent_dist = b.vae.encode(images).latent_dist
    prompt = concept.prompt()

    bank, rel = None, []
    if method.kd:
        rel = relevant_prompts(b.tokenizer, b.text_encoder, concept.class_word,
                               list(cfg.class_candidates or CLASSES), cfg.kd_related_classes, previous_subjects,
                               cfg.kd_templates)
        bank = TeacherBank(b, model.as_teacher, rel, trajectories=cfg.kd_trajectories,
                           teacher_steps=cfg.kd_teacher_steps, guidance_scale=cfg.guidance_scale, seed=cfg.seed)
    prior = _prior_latents(model, concept, cfg) if method.prior else None

    emb = b.text_encoder.get_input_embeddings().weight
    row_mask = torch.zeros(emb.shape[0], 1)
    row_mask[token_id] = 1.0
    hook = emb.register_hook(lambda g: g * row_mask)  # only the new token's row learns
    lora = model.task_parameters(entry.task)  # the task's LoRA, or the K/V weights (full-kv)
    opt = torch.optim.AdamW([{"params": lora, "lr": cfg.lr}, {"params": [emb], "lr": cfg.token_lr, "weight_decay": 0.0}],
                            weight_decay=0.0)
    params: list[torch.nn.Parameter] = [*lora, emb]
    if data_seed is not None:  # after the shared init: every worker draws its own batches
        rng = np.random.default_rng(data_seed)
        torch.manual_seed(data_seed)
        if bank is not None:
            bank.generator.manual_seed(data_seed)
    b.unet.train()
    b.text_encoder.train()
    ctx_dim = b.context_encoder.config.embed_dim
    losses, step_times = [], []
    first = 1
    named_lora = {n: p for n, p in b.unet.named_parameters() if any(p is q for q in lora)}
    if resume is not None:
        if sorted(named_lora) != sorted(resume["lora"]):
            raise ValueError(f"resume state does not match task {entry.task}'s trainable parameters")
        with torch.no_grad():
            for n, p in named_lora.items():
                p.copy_(resume["lora"][n])
            emb[token_id] = resume["token"]
        _unpack_optimizer(resume["optimizer"], opt, token_id)
        rng.bit_generator.state = resume["numpy_rng"]
        torch.set_rng_state(resume["torch_rng"])
        if bank is not None and resume.get("bank") is not None:
            _restore_bank(bank, resume["bank"])
        losses = [dict(r) for r in resume.get("losses", [])]
        first = int(resume["step"]) + 1

    def state(step: int) -> dict:
        return {"step": step, "task": entry.task, "token_id": token_id,
                "lora": {n: p.detach().clone() for n, p in named_lora.items()},
                "token": emb[token_id].detach().clone(), "optimizer": _pack_optimizer(opt, emb, token_id),
                "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                "bank": _bank_state(bank), "losses": [dict(r) for r in losses]}

    for step in range(first, cfg.steps + 1):
        t0 = time.time()
        picks = torch.from_numpy(rng.integers(images.shape[0], size=cfg.batch_size))
        latents = latent_dist.sample()[picks] * b.latent_scale
        prompts = [prompt] * cfg.batch_size
        context = torch.zeros(cfg.batch_size, 1, ctx_dim)
        if method.icgen and images.shape[0] > 1:
            keep = torch.from_numpy(rng.random(cfg.batch_size) >= cfg.icgen_context_dropout)
            if keep.any():
                refs, mask = _leave_one_out(images, picks[keep])
                with torch.no_grad():
                    context[keep] = b.context_encoder.embed_references(refs, mask)
        noise = torch.randn_like(latents)
        t = torch.randint(0, b.scheduler.config.num_train_timesteps, (cfg.batch_size,))
        x_in, t_in, p_in, c_in = [b.scheduler.add_noise(latents, noise, t)], [t], prompts, [context]
        n_main = cfg.batch_size
        targets = [noise]
        if prior is not None:
            idx = torch.from_numpy(rng.integers(len(prior[0]), size=cfg.prior_batch_size))
            p_noise = torch.randn(cfg.prior_batch_size, *latents.shape[1:])
            p_t = torch.randint(0, b.scheduler.config.num_train_timesteps, (cfg.prior_batch_size,))
            x_in.append(b.scheduler.add_noise(prior[0][idx], p_noise, p_t))
            t_in.append(p_t)
            p_in = p_in + [prior[1][i] for i in idx.tolist()]
            c_in.append(torch.zeros(cfg.prior_batch_size, 1, ctx_dim))
            targets.append(p_noise)
            n_main += cfg.prior_batch_size
        kd: KDBatch | None = None
        if bank is not None:
            if step > 1 and (step - 1) % cfg.kd_refresh_every == 0:
                bank.refresh()
            kd = bank.sample(cfg.kd_batch_size)
            x_in.append(kd.latents)
            t_in.append(kd.timesteps)
            p_in = p_in + kd.prompts
            c_in.append(torch.zeros(cfg.kd_batch_size, 1, ctx_dim))
        # One batched student pass over concept (+ prior) (+ KD) samples.
        text = encode_prompts(b.tokenizer, b.text_encoder, p_in)
        eps = b.unet(torch.cat(x_in), torch.cat(t_in), encoder_hidden_states=text,
                     added_cond_kwargs={"image_embeds": [torch.cat(c_in)]}).sample
        l_denoise = F.mse_loss(eps[:n_main], torch.cat(targets))
        loss = l_denoise
        row = {"step": step, "denoise": l_denoise.item()}
        if kd is not None:
            l_kd = F.mse_loss(eps[n_main:], kd.target)
            loss = loss + cfg.lambda_kd * l_kd
            row["kd"] = l_kd.item()
        if method.c_lora:
            l_reg = _clora_penalty(model, entry.task)
            loss = loss + cfg.lambda_clora * l_reg
            row["clora"] = l_reg.item()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_sync is not None:
            grad_sync(params)
        opt.step()
        step_times.append(time.time() - t0)
        losses.append(row)
        if checkpoint_cb is not None and checkpoint_every > 0 and step % checkpoint_every == 0 and step < cfg.steps:
            checkpoint_cb(step, state(step))
        if report and (step % cfg.report_every == 0 or step == cfg.steps):
            report({k: float(np.mean([r[k] for r in losses[-cfg.report_every:]])) for k in row if k != "step"} | {"step": step})
    hook.remove()
    b.unet.eval()
    b.text_encoder.eval()
    b.requires_grad_(False)
    seconds = time.time() - start
    step_seconds = float(np.median(step_times[1:] if len(step_times) > 1 else step_times)) if step_times else 0.0
    model.save_task(out, token_id, extra={"method": method.name, "steps": cfg.steps, "seconds": seconds,
                                          "step_seconds": step_seconds, "relevant_prompts": rel,
                                          "final": losses[-1]})
    return TaskResult(Path(out), seconds, step_seconds, losses, rel, resumed_from_step=first - 1)
