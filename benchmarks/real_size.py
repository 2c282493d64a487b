"""What one customization task costs at Stable Diffusion 1.5's real size: lfs against finetune, paired.

    python -m benchmarks.real_size --resolution 512,256 --precision fp32,bf16 --json OUT.json
    python -m benchmarks.real_size --base SD_FOLDER --isolate --configs 512:fp32:1+1:ckpt,512:bf16:4+4:ckpt
    python -m benchmarks.real_size --base SD_FOLDER --device cuda --configs 512:bf16 --steps 3

The base is `components/model/sd_shaped.py --size sd15` (SD 1.5's real UNet, VAE and CLIP ViT-L/14 configs,
random weights: cost and memory, never quality), built by its own process in a temporary folder unless
`--base` names one. A configuration is `RES:PRECISION[:B+K][:ckpt|:nockpt]`: the image size (the same
network, only the configs' `sample_size` changes), the frozen weights' precision (`Placement`), B concept
+ K KD samples per step (default `--batch`/`--kd-batch`, else params.yaml's) and gradient checkpointing
(default `--gradient-checkpointing`: `auto` = on for >= 512 px on the CPU, what fits in memory here).
The base is loaded once and the configurations run in order on one lifelong chain (each task folds the
last one's LoRA, so every task costs what task 1 costs; each task starts from fp32 frozen weights, as on a
freshly loaded model); `--isolate` runs each configuration in a fresh process instead, so its peak RSS
holds its own load and work only, and one killed for memory does not end the run.

In each configuration (`real_size_config.py`): finetune and lfs through `train_task` and one generated
image, every phase timed with its peak memory (`real_size_measure.py`), then scaled to the defaults of
params.yaml with every scaling stated (`real_size_scaling.py`).

Prints ONE JSON on stdout (progress on stderr); `--json OUT` also writes it, after every configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.real_size_config import Config, _one_config
from benchmarks.real_size_measure import Peak, _bytes, log

REPO = Path(__file__).resolve().parent.parent
SHOTS_FROM = REPO / "examples" / "concepts" / "00-byruri"


def _shots(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in SHOTS_FROM.iterdir() if p.suffix == ".png")
    for i in range(n):
        shutil.copy2(files[i % len(files)], folder / f"{i:02d}.png")
    return folder


# ---------------------------------------------------------------- the run


def measure(
    base: Path,
    *,
    configs: list[Config],
    device: str = "cpu",
    steps: int = 2,
    batch: int | None = None,
    kd_batch: int | None = None,
    ddim_steps: int = 2,
    shots: int = 2,
    gradient_checkpointing: str = "auto",
    threads: int | None = None,
    base_info: dict | None = None,
    on_config=None,
) -> dict:
    import torch

    from components.config import load_params
    from components.device import Placement, check_precision, resolve_device
    from components.lifelong import LifelongModel
    from components.lifelong.ledger import Ledger, folder_hash
    from components.model.pipeline import load

    wall = time.perf_counter()
    params = load_params()
    torch.set_num_threads(threads or params.runtime.threads)
    dev, why = resolve_device(device)
    for c in configs:
        check_precision(c.precision, dev)
    t = params.training
    defaults = {
        "batch_size": t.batch_size,
        "kd_batch_size": t.kd_batch_size,
        "kd_trajectories": t.kd_trajectories,
        "kd_teacher_steps": t.kd_teacher_steps,
        "kd_refresh_every": t.kd_refresh_every,
        "lora_rank": t.lora_rank,
        "sampling_steps": params.sampling.steps,
        "guidance_scale": t.guidance_scale,
    }
    measured = {
        "steps": steps,
        "batch": batch or t.batch_size,
        "kd_batch": kd_batch or t.kd_batch_size,
        "ddim_steps": ddim_steps,
        "shots": shots,
    }
    report = {
        "what": "one customization task at SD 1.5's real size (random weights: cost and memory, never quality)",
        "machine": {
            "device": str(dev),
            "why": why,
            "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        }
        | ({"gpu": torch.cuda.get_device_name(dev)} if dev.type == "cuda" else {}),
        "defaults": defaults,
        "measured_with": measured,
        "base": dict(base_info or {}),
        "runs": [],
    }
    peak = Peak(dev)
    peak.reset()
    start = time.perf_counter()
    base_hash = folder_hash(base)
    report["base"]["hash_s"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    bundle = load(base)
    report["base"]["load_s"] = round(time.perf_counter() - start, 2)
    report["base"] |= {"bytes_on_disk": _bytes(base), "load_peak": peak.read()}
    report["base"]["parameters"] = {
        k: sum(p.numel() for p in m.parameters()) for k, m in bundle.modules().items() if k != "context_encoder"
    }
    model = LifelongModel(bundle, Ledger(str(base), base_hash, "real-size"))
    log(f"base loaded in {report['base']['load_s']} s ({report['base']['parameters']})")
    scratch = Path(tempfile.mkdtemp(prefix="lfsd-real-size-"))
    try:
        shots_dir = _shots(scratch / "shots", shots)
        for c in configs:
            res, prec = c.resolution, c.precision
            where = Placement(dev, prec, why)
            gc = c.checkpointing
            if gc is None:
                gc = gradient_checkpointing == "on" or (
                    gradient_checkpointing == "auto" and dev.type == "cpu" and res >= 512
                )
            this = measured | {"batch": c.batch or measured["batch"], "kd_batch": c.kd_batch or measured["kd_batch"]}
            run = _one_config(model, params, where, res, gc, this, defaults, shots_dir, scratch)
            report["runs"].append(run)
            a = run["at_defaults"]
            log(
                f"{res} px {prec} batch {this['batch']}+{this['kd_batch']}: ratio lfs/finetune "
                f"{a['ratio_lfs_over_finetune']} (bank share {a['bank_share_of_lfs_step']}), "
                f"{a['seconds_per_image']} s/image"
            )
            report["wall_s"] = round(time.perf_counter() - wall, 1)
            if on_config is not None:
                on_config(report)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report["machine"]["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    report["wall_s"] = round(time.perf_counter() - wall, 1)
    return report


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _isolated(args, specs: list[str], base: Path, base_info: dict, write) -> dict:
    """Each configuration in a fresh process of this script: its peak RSS holds its own load and work only
    (no memory a previous configuration left to the allocator), and one killed for memory is recorded as
    such while the others still run."""
    common = ["--base", str(base), "--device", args.device, "--steps", str(args.steps)]
    common += ["--ddim-steps", str(args.ddim_steps), "--shots", str(args.shots)]
    common += ["--gradient-checkpointing", args.gradient_checkpointing]
    for flag, value in (("--batch", args.batch), ("--kd-batch", args.kd_batch), ("--threads", args.threads)):
        if value is not None:
            common += [flag, str(value)]
    wall = time.perf_counter()
    report: dict = {"runs": [], "failed_configs": []}
    for spec in specs:
        with tempfile.TemporaryDirectory(prefix="lfsd-real-size-run-") as tmp:
            out = Path(tmp) / "run.json"
            cmd = [sys.executable, "-m", "benchmarks.real_size", *common, "--configs", spec, "--json", str(out)]
            proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.DEVNULL, check=False)
            if proc.returncode != 0 or not out.is_file():
                why = " (killed: out of memory?)" if proc.returncode in (-9, 137) else ""
                report["failed_configs"].append({"config": spec, "exit_code": proc.returncode, "why": why.strip()})
                log(f"{spec}: exit {proc.returncode}{why}")
                continue
            child = json.loads(out.read_text())
        (run,) = child.pop("runs")
        run["process"] = {"config": spec} | {k: child["base"][k] for k in ("hash_s", "load_s", "load_peak")}
        run["process"]["load_average_start_end"] = [
            child["machine"].get("load_average_start"),
            child["machine"].get("load_average_end"),
        ]
        runs, failed = report["runs"] + [run], report["failed_configs"]
        report = {**report, **child, "runs": runs, "failed_configs": failed}
        report["base"] = {**child["base"], **base_info}
        report["isolated"] = "each configuration in its own process (load, hash and peak memory are per run)"
        report["wall_s"] = round(time.perf_counter() - wall, 1)
        write(report)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, default=None, help="an SD folder (default: build sd15 in a temp folder)")
    ap.add_argument("--size", choices=("sd15", "tiny"), default="sd15", help="what to build without --base")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    ap.add_argument("--precision", default="fp32,bf16", help="comma-separated: fp32, bf16, fp16 (GPU)")
    ap.add_argument("--resolution", default="512,256", help="comma-separated pixel sizes (multiples of 64)")
    ap.add_argument(
        "--configs",
        default=None,
        help="RES:PRECISION[:B+K][:ckpt|:nockpt],... in this order, instead of every --resolution x --precision",
    )
    ap.add_argument("--steps", type=int, default=2, help="training steps per method (the last one is used)")
    ap.add_argument("--batch", type=int, default=None, help="concept samples per step (default training.batch_size)")
    ap.add_argument("--kd-batch", type=int, default=None, help="KD samples per lfs step (default kd_batch_size)")
    ap.add_argument("--ddim-steps", type=int, default=2, help="DDIM steps measured for the bank and generation")
    ap.add_argument("--shots", type=int, default=2, help="concept images the task VAE-encodes")
    ap.add_argument("--gradient-checkpointing", choices=("auto", "on", "off"), default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default runtime.threads)")
    ap.add_argument("--isolate", action="store_true", help="each configuration in a fresh process (clean peaks)")
    ap.add_argument("--json", type=Path, default=None, help="also write the JSON here (after every configuration)")
    args = ap.parse_args(argv)

    if args.configs:
        specs = [c.strip() for c in args.configs.split(",") if c.strip()]
    else:
        precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
        specs = [f"{r}:{p}" for r in _ints(args.resolution) for p in precisions]
    configs = [Config.parse(c) for c in specs]

    def write(report: dict) -> None:
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=2) + "\n")

    built = None
    try:
        if args.base is None:  # built by its own process: the builder's memory is not this run's
            built = Path(tempfile.mkdtemp(prefix="lfsd-sd15-"))
            base = built / "base"
            log(f"building the {args.size} base in {base}")
            start = time.perf_counter()
            resolution = str(max(c.resolution for c in configs))
            cmd = [sys.executable, "-m", "components.model.sd_shaped", str(base), "--size", args.size]
            subprocess.run([*cmd, "--resolution", resolution], cwd=REPO, stdout=subprocess.DEVNULL, check=True)
            base_info = {"size": args.size, "built_s": round(time.perf_counter() - start, 1)}
        else:
            base = args.base
            base_info = {"dir": str(base)}
        if args.isolate and len(configs) > 1:
            report = _isolated(args, specs, base, base_info, write)
        else:
            report = measure(
                base,
                configs=configs,
                device=args.device,
                steps=args.steps,
                batch=args.batch,
                kd_batch=args.kd_batch,
                ddim_steps=args.ddim_steps,
                shots=args.shots,
                gradient_checkpointing=args.gradient_checkpointing,
                threads=args.threads,
                base_info=base_info,
                on_config=write,
            )
    finally:
        if built is not None:
            shutil.rmtree(built, ignore_errors=True)
    write(report)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
