"""The LFS-Diffusion objective for one task k: theta_{k-1} + C_k's few shots -> theta_k.

    L = L_denoise(C_k | ICGen context)                         the new concept, with leave-one-out context
        [+ L_denoise(prior images)]                            prior-preservation baseline only
        + lambda_kd * L_kd(student vs teacher, relevant prompts)   data-free KD, against RCF
                                                                   [lfs-context-kd: earlier concepts' prompts
                                                                    also with the teacher's own samples as context;
                                                                    lfs-cross-kd: and on the new shots, noised]
        [+ lambda_clora * sum (|dW_prev| * dW_new)^2]          C-LoRA baseline only

Relevant prompts (`kd_prompts`): the class word, its nearest class words in the text encoder's own embedding
space and at most `kd_previous_subjects` earlier concepts, each through the caption templates the base knows,
plus "" (the unconditional branch guidance needs). The teacher theta_{k-1} (the model with the new update
switched off) walks its own DDIM trajectories from Gaussian noise on those prompts; every point (x_t, t,
prompt) is kept with the teacher's noise prediction in a `TeacherBank` (`teacher_bank.py`), redrawn every
`kd_refresh_every` steps. No image, real or stored, is used: the KD term costs the student one batched forward pass.

ICGen: each concept shot is denoised with the other shots as visual context (leave-one-out), dropped
with probability `icgen_context_dropout`, so the concept is drawn from text alone too. Only C_k's own
shots are read. Which terms are on is the `Method` (lfs, ablations, baselines).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from components.config import TrainingConfig
from components.lifelong import LifelongModel
from components.model.losses import denoising_target
from components.model.pipeline import encode_prompts
from components.model.sampling import generate
from components.training.concept import Concept
from components.training.kd_prompts import relevant_prompts
from components.training.methods import Method
from components.training.teacher_bank import KDBatch, TeacherBank, teacher_contexts

# ---------------------------------------------------------------- baselines' extra terms


@torch.no_grad()
def prior_latents(model: LifelongModel, concept: Concept, cfg: TrainingConfig) -> tuple[torch.Tensor, list[str]]:
    """DreamBooth's offline replay: class images drawn by the frozen previous model before the task."""
    b = model.bundle
    prompts = [f"a {concept.class_word}"] * cfg.prior_images
    with model.as_teacher():
        images = generate(
            b,
            prompts,
            [cfg.seed * 10_000 + i for i in range(cfg.prior_images)],
            steps=20,
            guidance_scale=cfg.guidance_scale,
        )
    return b.encode_images(images), prompts


def clora_penalty(model: LifelongModel, task: int) -> torch.Tensor:
    """Self-regularisation (C-LoRA): the new update is penalised where earlier updates already acted."""
    from peft.tuners.lora import LoraLayer

    total = torch.zeros((), device=model.bundle.device)
    new, old = f"task{task}", [f"task{t}" for t in range(1, task)]
    for module in model.bundle.unet.modules():
        if not isinstance(module, LoraLayer) or new not in module.lora_A or not old:
            continue
        delta = lambda n, m=module: m.lora_B[n].weight @ m.lora_A[n].weight * m.scaling[n]
        with torch.no_grad():
            prev = sum(delta(n).abs() for n in old if n in module.lora_A)
        total = total + ((prev * delta(new)) ** 2).sum()
    return total


# ---------------------------------------------------------------- the objective


class LFSObjective:
    """Everything task k's loss needs, prepared once (shots' latents, teacher bank, prior images);
    `loss(step, rng)` draws one batch and returns (L, per-term values)."""

    def __init__(
        self,
        model: LifelongModel,
        concept: Concept,
        method: Method,
        cfg: TrainingConfig,
        class_candidates: list[str],
        previous: list[tuple[str, str]],
    ):
        self.model, self.method, self.cfg, self.task = model, method, cfg, model.ledger.entries[-1].task
        b = model.bundle
        self.icgen = method.icgen and b.has_context_path  # off on a base without a context path (methods.uses_icgen)
        self.images = concept.load_images(b.image_size).to(b.device)  # (K, 3, H, W): the only files a task reads
        with torch.no_grad():
            self.latent_dist = b.vae.encode(self.images).latent_dist
        self.prompt = concept.prompt()
        self.relevant: list[str] = []
        self.bank: TeacherBank | None = None
        if method.kd:
            self.relevant = relevant_prompts(
                b.tokenizer,
                b.text_encoder,
                concept.class_word,
                class_candidates,
                cfg.kd_related_classes,
                previous,
                cfg.kd_templates,
                cfg.kd_previous_subjects,
                self.task,
            )
            contexts = teacher_contexts(model, self.relevant, previous, cfg) if method.kd_context and self.icgen else {}
            cross = None
            if method.kd_cross:  # the new shots under earlier concepts' prompts (teacher_bank._add_cross_points)
                earlier = [p for p in self.relevant if any(s in p for s, _ in previous)]
                cross = (self.latent_dist.mean * b.latent_scale, earlier)
            self.bank = TeacherBank(model, self.relevant, cfg, contexts, cross)
        self.prior = prior_latents(model, concept, cfg) if method.prior else None

    def _icgen_context(self, picks: torch.Tensor, rng: np.random.Generator, ctx_dim: int) -> torch.Tensor:
        """(B, 1, E): for each picked shot the other shots' embedding (leave-one-out), zeros if dropped."""
        cfg, k = self.cfg, self.images.shape[0]
        context = torch.zeros(cfg.batch_size, 1, ctx_dim, device=self.images.device)
        if self.icgen and k > 1:
            keep = torch.from_numpy(rng.random(cfg.batch_size) >= cfg.icgen_context_dropout)
            if keep.any():
                refs = torch.stack(
                    [self.images[[j for j in range(k) if j != int(i)]] for i in picks[keep]]
                )  # (B', K-1, 3, H, W)
                with torch.no_grad():
                    mask = torch.ones(refs.shape[:2], device=refs.device)
                    context[keep] = self.model.bundle.context_encoder.embed_references(refs, mask).to(context.dtype)
        return context

    def loss(self, step: int, rng: np.random.Generator) -> tuple[torch.Tensor, dict]:
        b, cfg = self.model.bundle, self.cfg
        ctx_dim = b.context_encoder.config.embed_dim
        n_train = b.scheduler.config.num_train_timesteps
        # The new concept: B noisy shot latents (B, C, h, w) with their ICGen context.
        picks = torch.from_numpy(rng.integers(self.images.shape[0], size=cfg.batch_size))
        latents = self.latent_dist.sample()[picks] * b.latent_scale
        context = self._icgen_context(picks, rng, ctx_dim)
        noise = torch.randn_like(latents)
        t = torch.randint(0, n_train, (cfg.batch_size,), device=b.device)
        x_in, t_in, p_in, c_in, targets = (
            [b.scheduler.add_noise(latents, noise, t)],
            [t],
            [self.prompt] * cfg.batch_size,
            [context],
            [denoising_target(b.scheduler, latents, noise, t)],
        )
        n_main = cfg.batch_size
        if self.prior is not None:
            idx = torch.from_numpy(rng.integers(len(self.prior[0]), size=cfg.prior_batch_size))
            p_noise = torch.randn(cfg.prior_batch_size, *latents.shape[1:], device=b.device)
            p_t = torch.randint(0, n_train, (cfg.prior_batch_size,), device=b.device)
            x_in.append(b.scheduler.add_noise(self.prior[0][idx], p_noise, p_t))
            t_in.append(p_t)
            p_in = p_in + [self.prior[1][i] for i in idx.tolist()]
            c_in.append(torch.zeros(cfg.prior_batch_size, 1, ctx_dim, device=b.device))
            targets.append(denoising_target(b.scheduler, self.prior[0][idx], p_noise, p_t))
            n_main += cfg.prior_batch_size
        kd: KDBatch | None = None
        if self.bank is not None:
            if step > 1 and (step - 1) % cfg.kd_refresh_every == 0:
                self.bank.refresh()
            kd = self.bank.sample(cfg.kd_batch_size)
            x_in.append(kd.latents)
            t_in.append(kd.timesteps)
            p_in = p_in + kd.prompts
            c_in.append(
                torch.zeros(cfg.kd_batch_size, 1, ctx_dim, device=b.device) if kd.context is None else kd.context
            )
        # One batched student pass over concept (+ prior) (+ KD) samples: eps (N, C, h, w).
        text = encode_prompts(b.tokenizer, b.text_encoder, p_in)
        eps = b.unet(
            torch.cat(x_in),
            torch.cat(t_in),
            encoder_hidden_states=text,
            added_cond_kwargs={"image_embeds": [torch.cat(c_in)]},
        ).sample
        l_denoise = F.mse_loss(eps[:n_main], torch.cat(targets))
        loss, row = l_denoise, {"denoise": l_denoise.item()}
        if kd is not None:
            l_kd = F.mse_loss(eps[n_main:], kd.target)
            loss = loss + cfg.lambda_kd * l_kd
            row["kd"] = l_kd.item()
        if self.method.c_lora:
            l_reg = clora_penalty(self.model, self.task)
            loss = loss + cfg.lambda_clora * l_reg
            row["clora"] = l_reg.item()
        return loss, row
