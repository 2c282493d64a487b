"""ONE command for a GPU machine: lfsd at Stable Diffusion 1.5's real size on CUDA in bf16, then a sequence.

    python -m benchmarks.gpu_check [--json OUT]          # < 8 minutes on one H100; prints one JSON
    python -m benchmarks.gpu_check --dry-run-cpu         # the same code paths on tiny sizes, on this CPU

1. the SD-1.5-sized base (`components/model/sd_shaped.py --size sd15`: real configs, random weights, for
   cost and memory only) built in a temporary folder, hashed and loaded (timed); each task places it on
   CUDA in bf16 (`train_task`, as the pipeline does: frozen weights bf16, the task's LoRA and token fp32);
2. at 512 px, `--steps` (50) training steps of `finetune` and of `lfs` with params.yaml's default knobs
   (`train_task` itself: batch 4, KD batch 4, a teacher bank of 16 trajectories x 10 DDIM steps with
   guidance, redrawn every 50 steps): seconds per step (median from the second step), the bank's draw,
   torch.cuda.max_memory_allocated per method, and the lfs/finetune ratio with the bank amortised;
3. generation: a batch of 8 images at `sampling.steps` (after a short warm-up call): images per second;
4. a 3-concept `lfsd sequence` (examples/concepts/*) on the embedded base in a scratch CUDA/bf16 workspace,
   run as a subprocess: its exit code, wall time and the system metrics its MLflow store logged
   (`benchmarks/gpu_check_sequence.py`).

Each part's failure is recorded in the JSON (and the exit code is 1); the others still run. Without CUDA it
exits 2 at once with one line. `--dry-run-cpu`: parts 1-4 on the CPU at tiny sizes (the tiny SD-shaped
base at 64 px, 2 steps, tiny KD knobs, 2 images x 2 steps, a 1-concept `lfsd sequence` subprocess on the CPU, Ray off).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from benchmarks.gpu_check_sequence import _sequence

REPO = Path(__file__).resolve().parent.parent
NO_CUDA = "no CUDA device: run this on a GPU machine"


def log(msg: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _part(report: dict, name: str, fn, *args):
    """Run one part; its result (or its error) goes under report[name]."""
    start = time.perf_counter()
    log(f"{name} ...")
    try:
        report[name] = fn(*args)
        if "error" in report[name]:
            report["failed"].append(name)
    except Exception as err:  # a part's failure is data: the other parts still run
        report[name] = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()[-3000:]}
        report["failed"].append(name)
    report[name]["part_wall_s"] = round(time.perf_counter() - start, 1)
    log(f"{name}: {report[name]['part_wall_s']} s")
    return report[name]


# ---------------------------------------------------------------- parts 1-3: the real-size base


def _base(scratch: Path, size: str, resolution: int) -> dict:
    from components.model.sd_shaped import build_sd_shaped

    start = time.perf_counter()
    build_sd_shaped(scratch / "base", resolution=resolution, seed=0, size=size)
    return {"size": size, "resolution": resolution, "built_s": round(time.perf_counter() - start, 1)}


def _load(scratch: Path, where) -> tuple[object, dict]:
    """Hash and load the base as the pipeline does (onto the device in `train_task`, as a task does)."""
    from benchmarks.real_size_measure import Peak
    from components.lifelong import LifelongModel
    from components.lifelong.ledger import Ledger, folder_hash
    from components.model.pipeline import load

    base = scratch / "base"
    peak = Peak(where.device)
    peak.reset()
    start = time.perf_counter()
    base_hash = folder_hash(base)
    hashed = time.perf_counter()
    bundle = load(base)
    info = {
        "hash_s": round(hashed - start, 2),
        "load_s": round(time.perf_counter() - hashed, 2),
        "parameters": {k: sum(p.numel() for p in m.parameters()) for k, m in bundle.modules().items()},
    } | peak.read()
    return LifelongModel(bundle, Ledger(str(base), base_hash, "gpu-check")), info


def _training(model, where, scratch: Path, steps: int, dry: bool, gradient_checkpointing: bool) -> dict:
    import dataclasses

    from benchmarks.real_size_config import _all_fp32
    from benchmarks.real_size_measure import _train
    from components.config import load_params

    params = load_params()
    t = params.training
    knobs = {"steps": steps, "gradient_checkpointing": gradient_checkpointing}
    if dry:
        knobs |= {"batch_size": 1, "kd_batch_size": 1, "kd_trajectories": 2, "kd_teacher_steps": 2}
    out = {"knobs": {}}
    for method in ("finetune", "lfs"):
        cfg = dataclasses.replace(
            t,
            method=method,
            kd_templates=params.sd_base.kd_templates,
            class_candidates=params.sd_base.class_candidates,
            report_every=max(steps, 1),
            **knobs,
        )
        out["knobs"] = {
            k: getattr(cfg, k)
            for k in ("batch_size", "kd_batch_size", "kd_trajectories", "kd_teacher_steps", "kd_refresh_every")
        } | knobs
        log(f"  {method}: {steps} steps at {model.bundle.image_size} px")
        _all_fp32(model.bundle)  # each task begins on fp32 weights, as on a freshly loaded model (its LoRA: fp32)
        row = _train(model, method, cfg, where, REPO / "examples" / "concepts" / "00-byruri", scratch / method, method)
        row.pop("step_cpu_seconds", None)
        if steps > 10:  # keep the JSON short: the first step and the median stay
            row["first_step_s"] = row.pop("step_seconds")[0]
        out[method] = row
    ft, lfs = out["finetune"], out["lfs"]
    refresh = lfs.get("bank_refresh_measured_s", 0.0)  # the draw at the start: kd_trajectories x kd_teacher_steps
    amortised = refresh / cfg.kd_refresh_every
    lfs_step = lfs["median_step_s"] + amortised
    out |= {
        "bank_amortised_s_per_step": round(amortised, 4),
        "lfs_step_with_bank_s": round(lfs_step, 4),
        "ratio_lfs_over_finetune": round(lfs_step / ft["median_step_s"], 3),
        "bank_share_of_lfs_step": round(amortised / lfs_step, 3),
        "target_ratio": 1.6,
    }
    return out


def _generation(model, batch: int, steps: int, guidance: float, where) -> dict:
    from benchmarks.real_size_measure import Peak, _sync
    from components.model.sampling import generate

    b = model.bundle
    prompts, seeds = ["a photo of a dog"] * batch, list(range(batch))
    generate(b, prompts, seeds, steps=2, guidance_scale=guidance)  # warm-up: kernels, allocator
    peak = Peak(where.device)
    peak.reset()
    start = time.perf_counter()
    images = generate(b, prompts, seeds, steps=steps, guidance_scale=guidance)
    _sync(where.device)
    seconds = time.perf_counter() - start
    weights = sum(p.numel() * p.element_size() for m in b.modules().values() for p in m.parameters())
    return {
        "weights_gib": round(weights / 2**30, 2),
        "batch": batch,
        "steps": steps,
        "image_size": list(images.shape[-2:]),
        "seconds": round(seconds, 3),
        "images_per_s": round(batch / seconds, 3),
        "finite": bool(images.isfinite().all()),
    } | peak.read()


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run-cpu", action="store_true", help="every CPU-able part at tiny sizes on the CPU")
    ap.add_argument("--steps", type=int, default=None, help="training steps per method (default 50; dry 2)")
    ap.add_argument("--concepts", type=int, default=None, help="concepts in the sequence (default 3; dry 1)")
    ap.add_argument("--skip-sequence", action="store_true")
    ap.add_argument("--gradient-checkpointing", action="store_true", help="if 512 px batch 8 does not fit")
    ap.add_argument("--sequence-timeout", type=float, default=300.0, help="seconds before the sequence is stopped")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    import torch

    dry = args.dry_run_cpu
    if not dry and not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from components.config import load_params
    from components.device import Placement

    params = load_params()
    if dry:
        torch.set_num_threads(params.runtime.threads)
    where = Placement(torch.device("cpu") if dry else torch.device("cuda"), "bf16", "gpu_check")
    steps = args.steps or (2 if dry else 50)
    wall = time.perf_counter()
    report: dict = {
        "what": "lfsd at SD 1.5's real size on CUDA in bf16 (random weights: cost and memory, never quality)",
        "dry_run_cpu": dry,
        "device": str(where.device),
        "torch": torch.__version__,
        "failed": [],
    }
    if not dry:
        report |= {"gpu": torch.cuda.get_device_name(0), "cuda": torch.version.cuda}
    with tempfile.TemporaryDirectory(prefix="lfsd-gpu-check-") as tmp:
        scratch = Path(tmp)
        size, res = ("tiny", 64) if dry else ("sd15", 512)
        _part(report, "base", _base, scratch, size, res)
        model = None
        if "base" not in report["failed"]:
            holder: dict = {}

            def load_part():
                holder["model"], info = _load(scratch, where)
                return info

            _part(report, "load", load_part)
            model = holder.get("model")
        if model is not None:
            _part(report, "training", _training, model, where, scratch, steps, dry, args.gradient_checkpointing)
            batch, gsteps = (2, 2) if dry else (8, params.sampling.steps)
            _part(report, "generation", _generation, model, batch, gsteps, params.sampling.guidance_scale, where)
            del model
            if where.device.type == "cuda":
                torch.cuda.empty_cache()
        if not args.skip_sequence:
            n = args.concepts or (1 if dry else 3)
            _part(report, "sequence", _sequence, scratch, n, dry, args.sequence_timeout)
    report["wall_s"] = round(time.perf_counter() - wall, 1)
    text = json.dumps(report, indent=2)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print(text)
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
