"""The teacher's own inputs to data-free KD: points on its DDIM trajectories with its noise predictions.

The teacher theta_{k-1} (the model with the new update switched off) walks DDIM trajectories from Gaussian
noise on the relevant prompts (`kd_prompts.py`); every point (x_t, t, prompt) is kept with the teacher's
noise prediction in a `TeacherBank`, redrawn every `kd_refresh_every` steps. With `lfs-context-kd` the
earlier concepts' prompts are also walked with a visual context: the ICGen embedding of samples the teacher
drew of that concept (`teacher_contexts`), so KD pins the reference-conditioned path too. With `lfs-cross-kd`
the bank also holds *cross points*: the new concept's own shots, noised, under the earlier concepts' prompts
(and contexts), with the teacher's prediction there: where the new concept's training pushes, an earlier
concept's prompt must still be answered as before (`_cross_points`). No earlier image, real or stored, is used;
the new concept's shots are the task's own data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from components.config import TrainingConfig
from components.lifelong import LifelongModel
from components.model.pipeline import encode_prompts
from components.model.sampling import denoise, generate


@dataclass
class KDBatch:
    latents: torch.Tensor  # (N, C, h, w) noisy x_t on the teacher's trajectories
    timesteps: torch.Tensor  # (N,)
    prompts: list[str]
    target: torch.Tensor  # (N, C, h, w) teacher epsilon at (x_t, t, prompt)
    context: torch.Tensor | None = None  # (N, 1, E) the visual context the teacher was given (None: none)


class TeacherBank:
    """Points (x_t, t, prompt, eps_teacher) along `trajectories` DDIM runs of the frozen teacher."""

    def __init__(
        self,
        model: LifelongModel,
        prompts: list[str],
        cfg: TrainingConfig,
        contexts: dict[str, torch.Tensor] | None = None,
        cross: tuple[torch.Tensor, list[str]] | None = None,
    ):
        """`contexts`: prompt -> (1, 1, E) visual context for the prompts of earlier concepts (`teacher_contexts`);
        every other trajectory of such a prompt is drawn with it, so KD also pins the ICGen path. `cross`: the
        new concept's shot latents (K, C, h, w) and the earlier concepts' prompts, for `_cross_points`."""
        self.model, self.prompts, self.cfg, self.prompt_contexts = model, prompts, cfg, contexts or {}
        self.cross = cross if cross is not None and cross[1] else None
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.refreshes = 0
        self.contexts: torch.Tensor | None = None
        self.refresh()

    def _trajectory_contexts(self, prompts: list[str], device) -> torch.Tensor:
        """(n, 1, E): a prompt's teacher context on alternate trajectories (by refresh and position), else zeros."""
        ctx = torch.zeros(len(prompts), 1, self.model.bundle.context_encoder.config.embed_dim, device=device)
        for i, p in enumerate(prompts):
            if p in self.prompt_contexts and (self.refreshes + i) % 2 == 1:
                ctx[i] = self.prompt_contexts[p].to(device, ctx.dtype).reshape(1, -1)
        return ctx

    @torch.no_grad()
    def refresh(self) -> None:
        """Draw fresh trajectories from noise and record every point with the teacher's prediction."""
        b, n = self.model.bundle, self.cfg.kd_trajectories
        prompts = [self.prompts[(self.refreshes * n + i) % len(self.prompts)] for i in range(n)]
        c, s = b.unet.config.in_channels, b.unet.config.sample_size
        noise = torch.randn(n, c, s, s, generator=self.generator).to(b.device)  # once per refresh, not per step
        xs, ts, targets = [], [], []

        def record(t, x, eps_cond):
            xs.append(x.clone())
            ts.append(torch.full((n,), int(t), device=b.device))
            targets.append(eps_cond.clone())

        context = self._trajectory_contexts(prompts, b.device)
        with self.model.as_teacher():
            denoise(
                b,
                noise,
                prompts,
                context,
                steps=self.cfg.kd_teacher_steps,
                guidance_scale=self.cfg.guidance_scale,
                on_step=record,
            )
        self.latents, self.timesteps, self.targets = torch.cat(xs), torch.cat(ts), torch.cat(targets)
        self.point_prompts = prompts * len(xs)
        self.contexts = context.repeat(len(xs), 1, 1) if self.prompt_contexts else None
        if self.cross is not None:
            self._add_cross_points()
        self.refreshes += 1

    @torch.no_grad()
    def _add_cross_points(self) -> None:
        """As many cross points as the trajectories gave earlier concepts' prompts (so those prompts weigh
        twice, half on the teacher's own samples, half on the new shots): shot i % K noised to a uniform
        timestep, prompt cycled over the earlier concepts' prompts, that prompt's teacher context on every
        other point; the target is the teacher's conditional prediction there."""
        b, (shots, prompts) = self.model.bundle, self.cross
        m = sum(p in set(prompts) for p in self.point_prompts)
        if m == 0:
            return
        picked = [prompts[(self.refreshes * m + i) % len(prompts)] for i in range(m)]
        x0 = shots[torch.arange(m) % len(shots)]
        noise = torch.randn(x0.shape, generator=self.generator).to(b.device)
        t = torch.randint(b.scheduler.config.num_train_timesteps, (m,), generator=self.generator).to(b.device)
        x_t = b.scheduler.add_noise(x0, noise, t)
        context = self._trajectory_contexts(picked, b.device)
        with self.model.as_teacher():
            text = encode_prompts(b.tokenizer, b.text_encoder, picked)
            eps = b.unet(x_t, t, encoder_hidden_states=text, added_cond_kwargs={"image_embeds": [context]}).sample
        if self.contexts is None:
            self.contexts = torch.zeros(len(self.latents), *context.shape[1:], device=b.device)
        self.latents, self.timesteps = torch.cat([self.latents, x_t]), torch.cat([self.timesteps, t])
        self.targets, self.contexts = torch.cat([self.targets, eps]), torch.cat([self.contexts, context])
        self.point_prompts = self.point_prompts + picked

    def sample(self, k: int) -> KDBatch:
        idx = torch.randint(len(self.latents), (k,), generator=self.generator)
        return KDBatch(
            self.latents[idx],
            self.timesteps[idx],
            [self.point_prompts[i] for i in idx.tolist()],
            self.targets[idx],
            None if self.contexts is None else self.contexts[idx],
        )

    def state(self) -> dict:
        return {
            "generator": self.generator.get_state(),
            "refreshes": self.refreshes,
            "latents": self.latents.clone(),
            "timesteps": self.timesteps.clone(),
            "targets": self.targets.clone(),
            "point_prompts": list(self.point_prompts),
            "contexts": None if self.contexts is None else self.contexts.clone(),
        }

    def restore(self, st: dict) -> None:
        self.generator.set_state(st["generator"])
        self.refreshes = st["refreshes"]
        self.latents, self.timesteps, self.targets = st["latents"], st["timesteps"], st["targets"]
        self.point_prompts = list(st["point_prompts"])
        self.contexts = st.get("contexts")  # absent in a state saved before contexts existed


@torch.no_grad()
def teacher_contexts(
    model: LifelongModel, prompts: list[str], previous: list[tuple[str, str]], cfg: TrainingConfig
) -> dict[str, torch.Tensor]:
    """For each relevant prompt of an earlier concept: the visual context of `kd_context_images` samples the
    teacher draws of that concept from text ("a <name> class" through the first template), embedded as ICGen
    embeds references. Generated, never stored photos: no replay. Why: a similar new concept's ICGen
    training moves what the model draws from a context that looks like an earlier concept's references,
    which text-only KD does not see (docs/similar.md, issue 32 §4)."""
    b = model.bundle
    subjects = [s for s, _ in previous if any(s in p for p in prompts)]
    if not subjects or cfg.kd_context_images <= 0:
        return {}
    m = cfg.kd_context_images
    with model.as_teacher():
        images = generate(
            b,
            [cfg.kd_templates[0].format(s) for s in subjects for _ in range(m)],
            [cfg.seed * 10_000 + 5_000 + i for i in range(len(subjects) * m)],
            steps=20,
            guidance_scale=cfg.guidance_scale,
        )
    refs = images.to(b.device).view(len(subjects), m, *images.shape[1:])
    embedded = b.context_encoder.embed_references(refs).float()  # (S, 1, E)
    return {p: embedded[i] for i, s in enumerate(subjects) for p in prompts if s in p}
