"""What a training launcher is given, and the in-process launcher. The Ray Train launcher
(`components.ray_train.job.train_on_ray`) takes the same request and returns the same `TaskResult`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from components.config import TrainingConfig
from components.progress import progress
from components.training.loop import Report, TaskResult, WorkerHooks


@dataclass(frozen=True)
class TrainRequest:
    """One task: theta_{k-1} (the newest checkpoint of the chain, or the base) + a concept -> `out`."""

    base_dir: Path
    previous_checkpoint: Path | None
    concept_dir: Path
    references: str  # where the concept's references will live (recorded in the ledger)
    out: Path
    method: str
    cfg: TrainingConfig
    run_name: str | None = None  # names the attempt: a launcher that can resume (Ray) resumes a killed one
    device: str = "cpu"  # runtime.device as the command resolved it (a Ray GPU worker uses its own GPU)
    precision: str = "fp32"  # runtime.precision


Launcher = Callable[[TrainRequest, Report | None], TaskResult]


def previous_model(req: TrainRequest):
    """theta_{k-1}: rebuilt from the previous checkpoint, or the bare base for the first task. Folded as it
    is read (what `begin_task(fold_frozen=True)` would do next anyway, bitwise), so loading is flat in k;
    C-LoRA, whose penalty reads the earlier adapters, gets them stacked."""
    from components.lifelong import LifelongModel
    from components.training.methods import get_method

    if req.previous_checkpoint:
        return LifelongModel.from_checkpoint(
            Path(req.previous_checkpoint), Path(req.base_dir), fold=not get_method(req.method).c_lora
        )
    return LifelongModel.from_base(Path(req.base_dir), req.method)


def run_request(req: TrainRequest, report: Report | None = None, hooks=None, device: str | None = None) -> TaskResult:
    """The loop on this request, in this process (what every launcher ends up calling). `device`: where
    this process trains when the launcher knows better than the request (a Ray worker's own GPU)."""
    from components.device import Placement, check_precision, resolve_device
    from components.training.concept import read_concept
    from components.training.loop import train_task
    from components.training.methods import get_method

    where, why = resolve_device(device or req.device)
    check_precision(req.precision, where)

    return train_task(
        previous_model(req),
        read_concept(Path(req.concept_dir)),
        get_method(req.method),
        req.cfg,
        req.out,
        references=req.references,
        report=report,
        hooks=hooks,
        where=Placement(where, req.precision, why),
    )


def in_process(threads: int) -> Launcher:
    """A launcher that trains here, with `threads` torch threads (tests, the overhead benchmark). On a
    terminal a bar with an ETA follows the steps (stderr); off one, nothing is drawn."""

    def launch(req: TrainRequest, report: Report | None = None) -> TaskResult:
        import torch

        from components.training.system_metrics import with_system_metrics

        torch.set_num_threads(max(1, threads))
        with progress(f"training {Path(req.concept_dir).name}", req.cfg.steps) as advance:
            return run_request(req, with_system_metrics(report), WorkerHooks(on_step=lambda step: advance()))

    return launch
