"""One device and one precision for every tensor a command makes (params.yaml `runtime.device`,
`runtime.precision`; `--set runtime.device=cuda:1` per command).

    device     auto | cpu | cuda | cuda:N | mps      auto: CUDA when present, else the CPU (and why)
    precision  fp32 | bf16 | fp16                    the dtype of the FROZEN weights; what trains stays fp32

Mixed precision the way diffusers' training examples do it: the frozen base in the low precision, the
trainable LoRA / token row / K/V delta in fp32, the forward under autocast, a grad scaler for fp16.
Files are written in the precision they always were (checkpoints cast on save, never silently changed).
A setting the machine cannot honour is refused before anything starts, in one line naming the setting.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class DeviceError(ValueError):
    """A device or precision this machine cannot run: the message names the setting and the fix."""


@dataclass(frozen=True)
class Placement:
    """Where a command's tensors live and the dtype of its frozen weights."""

    device: torch.device
    precision: str = "fp32"
    why: str = ""  # how `auto` chose, or why it fell back to the CPU

    @property
    def dtype(self) -> torch.dtype:
        return PRECISIONS[self.precision]

    @property
    def mixed(self) -> bool:
        return self.precision != "fp32"

    def autocast(self):
        """The forward pass in the low precision (a no-op in fp32: the CPU path stays bitwise as it was)."""
        if not self.mixed:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def grad_scaler(self):
        """fp16 needs loss scaling against underflowing gradients; bf16 and fp32 do not (None)."""
        return torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None


CPU = Placement(torch.device("cpu"), "fp32", "runtime.device: cpu")


def resolve_device(spec: str) -> tuple[torch.device, str]:
    """`runtime.device` -> (torch device, why). Raises DeviceError when the machine has no such device."""
    spec = str(spec).strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device()), "auto: CUDA is available"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps"), "auto: Apple MPS is available"
        return torch.device(
            "cpu"
        ), f"auto: no GPU visible to torch {torch.__version__} (CUDA build: {torch.version.cuda})"
    if spec == "cpu":
        return torch.device("cpu"), "runtime.device: cpu"
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"runtime.device={spec}: this machine has no CUDA device torch can use (torch {torch.__version__}, "
                f"CUDA build {torch.version.cuda}); set runtime.device=auto or cpu (--set runtime.device=cpu)"
            )
        index = int(spec.split(":", 1)[1]) if ":" in spec else torch.cuda.current_device()
        if not 0 <= index < torch.cuda.device_count():
            raise DeviceError(
                f"runtime.device={spec}: there are {torch.cuda.device_count()} CUDA devices (cuda:0.."
                f"cuda:{torch.cuda.device_count() - 1}); pick one of them or runtime.device=auto"
            )
        return torch.device("cuda", index), f"runtime.device: {spec}"
    if spec == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise DeviceError("runtime.device=mps: Apple MPS is not available here; set runtime.device=auto or cpu")
        return torch.device("mps"), "runtime.device: mps"
    raise DeviceError(f"runtime.device={spec}: expected one of {', '.join(DEVICES)}")


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse a precision the device cannot train in (one line naming the setting and the fix)."""
    if precision not in PRECISIONS:
        raise DeviceError(f"runtime.precision={precision}: expected one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type == "cpu":
        raise DeviceError(
            "runtime.precision=fp16 on the CPU: CPUs have no fp16 training kernels (autocast and the grad scaler "
            "are CUDA features); use runtime.precision=bf16 or fp32 on the CPU, fp16 on a GPU"
        )
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DeviceError(
            f"runtime.precision=bf16 on {torch.cuda.get_device_name(device)}: this GPU has no bf16 support; "
            f"use runtime.precision=fp16 (with a grad scaler) or fp32"
        )


def placement(runtime) -> Placement:
    """The placement `runtime` (params.yaml's RuntimeConfig) asks for, checked against this machine."""
    device, why = resolve_device(runtime.device)
    check_precision(runtime.precision, device)
    return Placement(device, runtime.precision, why)


def check_local_ray_gpus(ray_cfg) -> None:
    """`ray.use_gpu: true` with a local Ray (no RAY_ADDRESS) needs one visible GPU per worker: refused
    here, before anything starts (a cluster's GPUs are checked when Ray is joined, `ray_train.runtime`)."""
    import os

    if not (ray_cfg.enabled and ray_cfg.use_gpu) or os.environ.get("RAY_ADDRESS"):
        return
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus < ray_cfg.num_workers:
        raise DeviceError(
            f"ray.use_gpu: true asks for {ray_cfg.num_workers} GPU worker(s), this machine has {gpus} GPU(s) and "
            f"no RAY_ADDRESS names a cluster; set ray.use_gpu: false (CPU workers) or point RAY_ADDRESS at GPU nodes"
        )


def facts(where: Placement) -> dict:
    """What `lfsd doctor` prints: the device, precision, GPU name and free memory, and why."""
    out = {
        "device": str(where.device),
        "precision": where.precision,
        "why": where.why,
        "torch": torch.__version__,
        "cuda_build": torch.version.cuda,
        "cuda_devices": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "threads": torch.get_num_threads(),
    }
    if where.device.type == "cuda":
        free, total = torch.cuda.mem_get_info(where.device)
        out |= {
            "gpu": torch.cuda.get_device_name(where.device),
            "gpu_free_gib": round(free / 2**30, 2),
            "gpu_total_gib": round(total / 2**30, 2),
            "bf16_supported": torch.cuda.is_bf16_supported(),
        }
    return out


def out_of_memory_message(err: BaseException, where: Placement, batch: int) -> str | None:
    """A one-line explanation when `err` (or what caused it) is the device running out of memory, else None."""
    while err is not None and not isinstance(err, torch.OutOfMemoryError):
        err = err.__cause__ or err.__context__
    if err is None:
        return None
    return (
        f"{where.device} ran out of memory (batch {batch}, runtime.precision={where.precision}): "
        f"set training.gradient_checkpointing=true, lower training.batch_size / training.kd_batch_size, use "
        f"runtime.precision=bf16, or a larger GPU; nothing was committed"
    )
