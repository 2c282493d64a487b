"""One configuration of `benchmarks/real_size.py`: its spec `RES:PRECISION[:B+K][:ckpt|:nockpt]`, the base set
to its image size (the same network, only the configs' `sample_size` changes) and back to fp32 weights, then
finetune and lfs trained, one image generated, and both scaled to params.yaml's defaults.

Each task starts from fp32 frozen weights, as on a freshly loaded model; the configuration's `Placement`
puts the frozen weights in its precision.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from benchmarks.real_size_measure import _generate, _text_seconds, _train, log
from benchmarks.real_size_scaling import _at_defaults

METHODS = ("finetune", "lfs")  # finetune first: the pair shares every slow spell in the same order


@dataclasses.dataclass(frozen=True)
class Config:
    """One measured configuration: `RES:PRECISION[:B+K][:ckpt|:nockpt]` on the command line (B concept and K
    KD samples per step; default --batch/--kd-batch; checkpointing default --gradient-checkpointing)."""

    resolution: int
    precision: str
    batch: int | None = None
    kd_batch: int | None = None
    checkpointing: bool | None = None

    @classmethod
    def parse(cls, text: str) -> Config:
        res, prec, *rest = [x.strip() for x in text.split(":")]
        batch = kd_batch = checkpointing = None
        for item in rest:
            if item in ("ckpt", "nockpt"):
                checkpointing = item == "ckpt"
            else:
                b, _, k = item.partition("+")
                batch, kd_batch = int(b), int(k or b)
        return cls(int(res), prec, batch, kd_batch, checkpointing)


# ---------------------------------------------------------------- the base, placed


def _set_resolution(bundle, resolution: int) -> None:
    """The same network at another image size: only the configs' sample_size changes (latent = px / 8)."""
    down = 2 ** (len(bundle.vae.config.block_out_channels) - 1)
    if resolution % (8 * down):
        raise ValueError(f"resolution {resolution} is not a multiple of {8 * down}")
    bundle.unet.register_to_config(sample_size=resolution // down)
    bundle.vae.register_to_config(sample_size=resolution)
    assert bundle.image_size == resolution


def _all_fp32(bundle) -> None:
    """Undo an earlier low-precision `place` (values keep their bf16 rounding: irrelevant for cost)."""
    import torch

    for module in bundle.modules().values():
        module.to(torch.float32)


# ---------------------------------------------------------------- one (resolution, precision)


def _one_config(model, params, where, res: int, gc: bool, measured: dict, defaults: dict, shots: Path, scratch: Path):
    """finetune then lfs (train_task, timed), then one generated image, at `res` px in `where.precision`."""
    bundle, steps, ddim_steps = model.bundle, measured["steps"], measured["ddim_steps"]
    _all_fp32(bundle)
    _set_resolution(bundle, res)
    prec = where.precision
    run = {
        "resolution": res,
        "precision": prec,
        "gradient_checkpointing": gc,
        "batch": measured["batch"],
        "kd_batch": measured["kd_batch"],
        "methods": {},
    }
    for method in METHODS:
        cfg = dataclasses.replace(
            params.training,
            method=method,
            steps=steps,
            batch_size=measured["batch"],
            kd_batch_size=measured["kd_batch"],
            kd_trajectories=1,
            kd_teacher_steps=ddim_steps,
            kd_refresh_every=steps + 1,  # drawn once, at the start, and timed there
            gradient_checkpointing=gc,
            kd_templates=params.sd_base.kd_templates,
            class_candidates=params.sd_base.class_candidates,
            report_every=max(steps, 1),
        )
        tag = f"rs{res}{prec}b{measured['batch']}k{measured['kd_batch']}{'c' if gc else ''}{method.replace('-', '')}"
        samples = measured["batch"] + (measured["kd_batch"] if method == "lfs" else 0)
        log(f"{res} px {prec}: {method}, {steps} steps x {samples} samples (checkpointing {'on' if gc else 'off'})")
        # Each task starts from fp32 frozen weights, as a task on a freshly loaded model does: a LoRA that peft
        # adds to an already-bf16 layer is made bf16 itself (and would train in bf16).
        _all_fp32(bundle)
        run["methods"][method] = _train(model, method, cfg, where, shots, scratch / tag, tag)
        log(f"  {json.dumps(run['methods'][method])}")
    bank_text = _text_seconds(bundle, 1, where.device)
    log(f"{res} px {prec}: generate 1 image, {ddim_steps} DDIM steps + decode")
    run["generation"] = _generate(model, ddim_steps, params.sampling.guidance_scale, where.device)
    for clock, text_s, key in (("wall", bank_text[0], "at_defaults"), ("cpu", bank_text[1], "at_defaults_cpu_time")):
        run[key] = _at_defaults(
            run["methods"], run["generation"], text_s, defaults, measured, params.sampling.steps, clock
        )
    return run
