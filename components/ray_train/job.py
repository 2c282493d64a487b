"""The Ray Train (V2) launcher: one lifelong task on Ray workers, the same loop as in-process.

`train_on_ray` runs one `TorchTrainer.fit` per task; its workers run `worker.train_one`, which
rebuilds theta_{k-1} from its checkpoint folder and runs `loop.train_task` (a sequence can keep one fit
for all its tasks instead: `warm`). Ray Train adds what the in-process launcher lacks:

- fault tolerance: every `ray.checkpoint_every` steps each worker reports a resumable state (`resume.py`);
  a crashed worker group restarts from the last one (`FailureConfig`), and so does a rerun of a named run;
- data parallelism: with `num_workers > 1` every worker draws its own batches and the trainable
  tensors' gradients are all-reduced (averaged) before each optimizer step (DDP semantics without
  wrapping the peft UNet in DDP, whose bucketed hooks would also cover the frozen base).

Only rank 0 writes the final task checkpoint to `out`: on a multi-node cluster it must be on storage
every node sees (docs/ray.md).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
import uuid
from pathlib import Path

from components.config import RayConfig
from components.ray_train.progress_file import follow, progress_path
from components.ray_train.runtime import cpus_per_worker, ensure_ray, require_gpus, run_storage, train_env, work_dir
from components.ray_train.worker import FAIL_AT_STEP_ENV, gather_nodes, train_one, worker_setup
from components.training.launch import Launcher, TrainRequest
from components.training.loop import Report, TaskResult

__all__ = ["FAIL_AT_STEP_ENV", "on_ray", "train_on_ray"]

log = logging.getLogger(__name__)


def train_loop_per_worker(config: dict) -> dict | None:
    """One Ray Train worker of a one-task fit: the task of `config["request"]` (`worker.train_one`)."""
    rank, world = worker_setup(config)
    return train_one(
        config, config["request"], config["run_name"], rank, world, gather_nodes(world), config.get("progress_file")
    )


def loop_config(req: TrainRequest, ray_cfg: RayConfig, state_dir: Path, run_name: str) -> dict:
    """What every worker is given: the request with absolute paths, threads, checkpoint cadence, cwd."""
    threads = max(1, int(cpus_per_worker(ray_cfg)))
    absolute = lambda p: Path(os.path.abspath(p)) if p else None
    request = dataclasses.replace(
        req,
        base_dir=absolute(req.base_dir),
        concept_dir=absolute(req.concept_dir),
        previous_checkpoint=absolute(req.previous_checkpoint),
    )
    return {
        "run_name": run_name,
        "request": request,
        "checkpoint_every": ray_cfg.checkpoint_every,
        "threads": threads,
        "cwd": os.getcwd(),
        "fail_at_step": int(os.environ.get(FAIL_AT_STEP_ENV) or 0),
        "progress_file": progress_path(run_storage(ray_cfg, state_dir), run_name),
    }  # None off a terminal


def attempt_name(req: TrainRequest) -> str:
    """A named attempt resumes from its stored checkpoints; an unnamed one gets a fresh name."""
    from components.training.concept import read_concept

    name = read_concept(Path(req.concept_dir)).name
    return req.run_name or f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def task_result(
    req: TrainRequest, ret: dict | None, name: str, run_name: str, start: float, on_report: Report | None
) -> TaskResult:
    """What rank 0 returned, as the launcher's TaskResult; `on_report` gets each reported row."""
    if not ret:
        raise RuntimeError(f"Ray training of concept {name!r} returned nothing from rank 0 (run {run_name})")
    rows = [dict(r) for r in ret["rows"]]
    for row in rows if on_report is not None else ():
        on_report(row)
    return TaskResult(
        Path(req.out),
        float(ret["seconds"]),
        float(ret["step_seconds"]),
        rows,
        list(ret["relevant_prompts"]),
        resumed_from_step=int(ret["resumed_from_step"]),
        wall_seconds=time.time() - start,
        worker_nodes=list(ret.get("worker_nodes", [])),
        worker_pid=int(ret.get("worker_pid", 0)),
    )


def trainer(loop, config: dict, ray_cfg: RayConfig, state_dir: Path, run_name: str):
    """The TorchTrainer both Ray launchers run (one fit per task, the warm group): NCCL between GPU
    workers (`ray.use_gpu`), gloo between CPU workers, the configured scaling, failures and storage."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    threads = str(config["threads"])
    return TorchTrainer(
        loop,
        train_loop_config=config,
        torch_config=TorchConfig(backend="nccl" if ray_cfg.use_gpu else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=ray_cfg.num_workers,
            use_gpu=ray_cfg.use_gpu,
            resources_per_worker={"CPU": cpus_per_worker(ray_cfg)} | dict(ray_cfg.worker_resources),
            placement_strategy=ray_cfg.placement_strategy,
        ),
        run_config=RunConfig(
            name=run_name,
            storage_path=run_storage(ray_cfg, state_dir),
            failure_config=FailureConfig(max_failures=ray_cfg.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=1),
            worker_runtime_env={"env_vars": {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}},
        ),
    )


def train_on_ray(req: TrainRequest, ray_cfg: RayConfig, state_dir: Path, on_report: Report | None = None) -> TaskResult:
    """Train one concept as a Ray Train job; `req.out` receives the task checkpoint. `on_report` gets
    each reported metrics row (step + mean losses since the previous report), in the driver, after the
    run. Raises RuntimeError naming the concept if the run fails for good."""
    from components.training.concept import read_concept

    start = time.time()
    ensure_ray(ray_cfg, state_dir)
    require_gpus(ray_cfg)
    train_env(ray_cfg)  # also when Ray was started elsewhere in this process
    name = read_concept(Path(req.concept_dir)).name
    run_name = attempt_name(req)
    config = loop_config(req, ray_cfg, state_dir, run_name)
    fit = trainer(train_loop_per_worker, config, ray_cfg, state_dir, run_name)
    fit_start = time.time()
    try:
        with follow(config["progress_file"], f"training {name}"):  # the worker's steps, while fit() runs
            result = fit.fit()
    except Exception as e:
        raise RuntimeError(f"Ray training of concept {name!r} failed: {e}") from e
    finally:
        shutil.rmtree(work_dir(run_name), ignore_errors=True)
    if result.error is not None:
        raise RuntimeError(f"Ray training of concept {name!r} failed: {result.error}")
    ret = result.return_value
    end, m = time.time(), (ret or {}).get("marks", {})
    if m:  # where the fixed cost goes (clocks of one machine, or of NTP-synced nodes)
        log.info(
            "ray task %s: setup %.1fs, fit->worker loop %.1fs, model+imports %.1fs, train %.1fs, "
            "worker->fit return %.1fs",
            name,
            fit_start - start,
            m["loop_start"] - fit_start,
            m["model_ready"] - m["loop_start"],
            m["trained"] - m["model_ready"],
            end - m["trained"],
        )
    return task_result(req, ret, name, run_name, start, on_report)


def on_ray(ray_cfg: RayConfig, state_dir: Path) -> Launcher:
    """A launcher that trains each request as a Ray Train job (the pipeline's)."""

    def launch(req: TrainRequest, report: Report | None = None) -> TaskResult:
        return train_on_ray(req, ray_cfg, state_dir, report)

    return launch
