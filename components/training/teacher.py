"""Data-free knowledge distillation: the frozen previous model teaches on inputs it makes itself.

A `TeacherBank` holds points (x_t, t, prompt, eps_teacher) taken along the teacher's own DDIM
trajectories started from Gaussian noise. No image, real or stored, is involved; the bank lives in
memory and is redrawn from fresh noise every `refresh_every` steps. Since the teacher is frozen, its
prediction at a point never changes, so it is computed once, while the trajectory is drawn: the KD
term then costs the student one extra (batched) forward pass, not extra teacher passes per step.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from components.model.pipeline import DiffusionBundle, ddim_scheduler


@dataclass
class KDBatch:
    latents: torch.Tensor  # (N, C, h, w) noisy x_t
    timesteps: torch.Tensor  # (N,)
    prompts: list[str]
    target: torch.Tensor  # (N, C, h, w) teacher epsilon


class TeacherBank:
    def __init__(
        self,
        bundle: DiffusionBundle,
        as_teacher: Callable[[], AbstractContextManager],
        prompts: list[str],
        *,
        trajectories: int,
        teacher_steps: int,
        guidance_scale: float,
        seed: int,
    ):
        self.bundle, self.as_teacher, self.prompts = bundle, as_teacher, prompts
        self.trajectories, self.teacher_steps, self.guidance = trajectories, teacher_steps, guidance_scale
        self.generator = torch.Generator().manual_seed(seed)
        self.refreshes = 0
        self.refresh()

    @torch.no_grad()
    def refresh(self) -> None:
        """Draw fresh trajectories from noise and record every point with the teacher's prediction."""
        b = self.bundle
        n = self.trajectories
        prompts = [self.prompts[(self.refreshes * n + i) % len(self.prompts)] for i in range(n)]
        c, s = b.unet.config.in_channels, b.unet.config.sample_size
        sched = ddim_scheduler(b.scheduler.config)
        sched.set_timesteps(self.teacher_steps)
        x = torch.randn(n, c, s, s, generator=self.generator) * sched.init_noise_sigma
        null_ctx = torch.zeros(2 * n, 1, b.context_encoder.config.embed_dim)
        xs, ts, targets = [], [], []
        with self.as_teacher():
            text = b.encode_prompts(prompts + [""] * n)
            for t in sched.timesteps:
                inp = sched.scale_model_input(torch.cat([x, x]), t)
                eps = b.unet(inp, t, encoder_hidden_states=text, added_cond_kwargs={"image_embeds": [null_ctx]}).sample
                cond, uncond = eps.chunk(2)
                xs.append(x.clone())
                ts.append(torch.full((n,), int(t)))
                targets.append(cond.clone())
                x = sched.step(uncond + self.guidance * (cond - uncond), t, x).prev_sample
        self.latents, self.timesteps, self.targets = torch.cat(xs), torch.cat(ts), torch.cat(targets)
        self.point_prompts = prompts * len(sched.timesteps)
        self.refreshes += 1

    def sample(self, k: int) -> KDBatch:
        idx = torch.randint(len(self.latents), (k,), generator=self.generator)
        return KDBatch(self.latents[idx], self.timesteps[idx], [self.point_prompts[i] for i in idx.tolist()], self.targets[idx])


def kd_loss(student_eps: torch.Tensor, batch: KDBatch) -> torch.Tensor:
    """MSE between the student's and the teacher's noise predictions on the teacher's own inputs."""
    return F.mse_loss(student_eps, batch.target)
