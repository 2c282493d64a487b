"""The per-phase measurements of `benchmarks/real_size.py`: peak memory, clocks, one timed task, one timed image.

In each configuration:

  finetune, lfs  `train_task` itself, the pipeline's loop, for `--steps` steps at `--batch` concept
                 samples (+ `--kd-batch` KD samples for lfs) per step: the STUDENT step (forward +
                 backward + AdamW), timed per step (the first includes warm-up; the last is used). Its
                 teacher bank is drawn once, at the objective's construction, with ONE trajectory of
                 `--ddim-steps` DDIM steps with classifier-free guidance (a batch-2 UNet forward per step)
                 and timed: that is the bank's unit cost. Also timed: the task's setup (token, LoRA,
                 VAE-encoding the shots, relevant prompts) and the bytes of the task checkpoint it writes.
  generate       one image, `--ddim-steps` DDIM steps with guidance, then the VAE decode, timed apart.

Memory: the process's peak RSS per phase (VmHWM reset through /proc/self/clear_refs on Linux, else the
lifetime ru_maxrss) and, on CUDA, torch.cuda.max_memory_allocated per phase. Time: wall seconds and the
process's CPU seconds side by side (on a shared CPU the CPU seconds are the steadier measure of the work).
"""

from __future__ import annotations

import contextlib
import itertools
import resource
import statistics
import sys
import time
from pathlib import Path

CLASS_WORD = "dog"  # one of params.yaml's sd_base.class_candidates
PROMPT = "a photo of a dog"


def log(msg: str) -> None:
    print(f"[real_size {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- memory and clocks


def _vmhwm_gib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


class Peak:
    """Peak memory of one phase: RSS (VmHWM, reset at the start where Linux allows) and CUDA allocations."""

    def __init__(self, device):
        self.device = device
        self.resettable = True

    def reset(self) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        except OSError:
            self.resettable = False

    def read(self) -> dict:
        import torch

        hwm = _vmhwm_gib()
        if hwm is not None and self.resettable:
            out = {"rss_peak_gib": round(hwm, 2)}
        else:  # ru_maxrss: KiB on Linux, the whole process's life
            out = {
                "rss_peak_gib_process_lifetime": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
            }
        if self.device.type == "cuda":
            out["cuda_max_allocated_gib"] = round(torch.cuda.max_memory_allocated(self.device) / 2**30, 2)
            out["cuda_max_reserved_gib"] = round(torch.cuda.max_memory_reserved(self.device) / 2**30, 2)
        return out


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def _timed(cls, name: str, sink: list, device):
    """Record (start, end) of every call of cls.name (a method of the training code) while inside."""
    original = getattr(cls, name)

    def wrapper(self, *args, **kwargs):
        _sync(device)
        start, cpu = time.perf_counter(), time.process_time()
        try:
            return original(self, *args, **kwargs)
        finally:
            _sync(device)
            sink.append((start, time.perf_counter(), cpu, time.process_time()))

    setattr(cls, name, wrapper)
    try:
        yield
    finally:
        setattr(cls, name, original)


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


# ---------------------------------------------------------------- the phases, timed


def _train(model, method_name, cfg, where, shots: Path, out: Path, tag: str) -> dict:
    """One task of `train_task` with every phase timed (see the module docstring)."""
    from components.training import lfs_loss
    from components.training.concept import Concept
    from components.training.loop import WorkerHooks, train_task
    from components.training.methods import get_method

    device = where.device
    stamps: list[tuple[float, float]] = []  # (wall, process CPU) at the end of each step

    def on_step(step: int) -> None:
        _sync(device)
        stamps.append((time.perf_counter(), time.process_time()))

    peak = Peak(device)
    peak.reset()
    refreshes: list[tuple[float, float, float, float]] = []
    inits: list[tuple[float, float, float, float]] = []
    concept = Concept(name=tag, class_word=CLASS_WORD, folder=shots)
    with (
        _timed(lfs_loss.TeacherBank, "refresh", refreshes, device),
        _timed(lfs_loss.LFSObjective, "__init__", inits, device),
    ):
        _sync(device)
        start = time.perf_counter()
        train_task(model, concept, get_method(method_name), cfg, out, hooks=WorkerHooks(on_step=on_step), where=where)
        _sync(device)
        end = time.perf_counter()
    objective_end = (inits[0][1], inits[0][3])
    marks = [objective_end, *stamps]
    steps = [b[0] - a[0] for a, b in itertools.pairwise(marks)]
    steps_cpu = [b[1] - a[1] for a, b in itertools.pairwise(marks)]
    refresh = sum(r[1] - r[0] for r in refreshes)
    samples = cfg.batch_size + (cfg.kd_batch_size if method_name == "lfs" else 0)
    row = (
        {
            "step_seconds": [round(s, 3) for s in steps],
            "step_cpu_seconds": [round(s, 3) for s in steps_cpu],  # process CPU time (all threads)
            "student_step_s": round(steps[-1], 3),  # the last step (the first pays warm-up)
            "median_step_s": round(statistics.median(steps[1:] or steps), 3),  # from the second step on
            "student_step_cpu_s": round(steps_cpu[-1], 3),
            "samples_per_step": samples,
            "student_s_per_sample": round(steps[-1] / samples, 3),
            "student_cpu_s_per_sample": round(steps_cpu[-1] / samples, 3),
            "task_setup_s": round(objective_end[0] - start - refresh, 3),  # token, LoRA, shots' latents, prompts
            "checkpoint_bytes": _bytes(out),
            "checkpoint_write_s": round(end - stamps[-1][0], 3),
            "task_wall_s": round(end - start, 3),
        }
        | peak.read()
    )
    if refreshes:  # 1 trajectory x ddim_steps, with guidance
        row["bank_refresh_measured_s"] = round(refresh, 3)
        row["bank_refresh_measured_cpu_s"] = round(sum(r[3] - r[2] for r in refreshes), 3)
    return row


def _text_seconds(bundle, n_prompts: int, device) -> tuple[float, float]:
    """(wall, CPU) seconds of encoding n prompts + n empty ones (what one guided trajectory or image encodes
    once)."""
    _sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    with bundle.autocast():
        bundle.encode_prompts([PROMPT] * n_prompts + [""] * n_prompts)
    _sync(device)
    return time.perf_counter() - start, time.process_time() - cpu


def _generate(model, ddim_steps: int, guidance: float, device) -> dict:
    """One image through the one DDIM loop (`sampling.denoise`) and the VAE decode, timed apart."""
    import torch

    from components.model.sampling import context_embeddings, denoise, initial_latents

    b = model.bundle
    peak = Peak(device)
    peak.reset()
    text, text_cpu = _text_seconds(b, 1, device)
    with torch.no_grad(), b.autocast():
        ctx = context_embeddings(b, None, 1)
        noise = initial_latents(b, [0])
        _sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        latents = denoise(b, noise, [PROMPT], ctx, steps=ddim_steps, guidance_scale=guidance)
        _sync(device)
        t1, c1 = time.perf_counter(), time.process_time()
        image = b.decode_latents(latents).float().cpu()
        t2, c2 = time.perf_counter(), time.process_time()
    assert torch.isfinite(image).all()
    return {
        "ddim_steps_measured": ddim_steps,
        "denoise_measured_s": round(t1 - t0, 3),  # includes encoding the prompt and ""
        "text_s": round(text, 3),
        "step_s": round(max(t1 - t0 - text, 0.0) / ddim_steps, 3),  # one guided UNet pass (batch 2)
        "decode_s": round(t2 - t1, 3),
        "text_cpu_s": round(text_cpu, 3),
        "step_cpu_s": round(max(c1 - c0 - text_cpu, 0.0) / ddim_steps, 3),
        "decode_cpu_s": round(c2 - c1, 3),
    } | peak.read()
