"""The Ray Train (V2) launcher: one lifelong task on Ray workers, the same loop as in-process.

`train_on_ray` runs a `TorchTrainer` whose workers rebuild theta_{k-1} from its checkpoint folder and
run `loop.train_task`. Ray Train adds what the in-process launcher lacks:

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
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from components.config import RayConfig
from components.training.launch import Launcher, TrainRequest
from components.training.loop import Report, TaskResult
from components.training.progress_file import follow, progress_path, step_writer
from components.training.ray_runtime import cpus_per_worker, ensure_ray, run_storage, train_env, work_dir

FAIL_AT_STEP_ENV = "LFSD_RAY_FAIL_AT_STEP"  # test-only fault injection (see train_loop_per_worker)
STATE_FILE = "state-rank{rank}.pt"
ROWS_FILE = "reported.json"

log = logging.getLogger(__name__)


def _allreduce_mean(params: list) -> None:
    """Average the gradients of `params` over the process group (one flat all-reduce)."""
    import torch
    import torch.distributed as dist

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for p, g in zip(params, grads):
        chunk = flat[offset:offset + g.numel()].view_as(g)
        offset += g.numel()
        if p.grad is None:
            p.grad = chunk.clone()
        else:
            p.grad.copy_(chunk)


def _mean_over_workers(metrics: dict) -> dict:
    import torch
    import torch.distributed as dist

    keys = [k for k in metrics if k != "step"]
    values = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(values)
    values /= dist.get_world_size()
    return {k: float(v) for k, v in zip(keys, values)} | {"step": metrics["step"]}


def _gather_nodes(world: int) -> list[str]:
    """The Ray node id of every rank, in rank order (where each worker really ran)."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    if world == 1:
        return [node]
    import torch.distributed as dist

    nodes: list = [None] * world
    dist.all_gather_object(nodes, node)
    return [str(n) for n in nodes]


def _restored_state(rank: int):
    """(resume state, reported rows) from the checkpoint Ray restarted this worker group with, if any."""
    import ray.train
    import torch

    restored = ray.train.get_checkpoint()
    if restored is None:
        return None, []
    with restored.as_directory() as d:
        path = Path(d) / STATE_FILE.format(rank=rank)
        if not path.is_file():  # the world size changed: take rank 0's weights (same on every rank)
            path = Path(d) / STATE_FILE.format(rank=0)
        rows = json.loads((Path(d) / ROWS_FILE).read_text()) if (Path(d) / ROWS_FILE).is_file() else []
        return torch.load(path, weights_only=True), rows


def train_loop_per_worker(config: dict) -> dict | None:
    """One Ray Train worker: restore the last resumable state if Ray restarted us, run the loop on the
    request, report every `report_every` steps (with a checkpoint every `checkpoint_every`).

    `fail_at_step` (config key or LFSD_RAY_FAIL_AT_STEP) is test-only fault injection: rank 0 raises at
    the first report at or after that step, unless it resumed from a checkpoint."""
    marks = {"loop_start": time.time()}
    threads = int(config["threads"])
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    import ray.train

    from components.training.launch import run_request
    from components.training.loop import WorkerHooks
    from components.training.system_metrics import with_system_metrics

    if config.get("cwd") and Path(config["cwd"]).is_dir():
        os.chdir(config["cwd"])  # relative paths (ledger entries, out) mean what they mean to the driver
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    req: TrainRequest = config["request"]
    resume, rows = _restored_state(rank)
    # Local scratch per run and rank: a worker killed mid-run (its peer failed) leaves it behind; the next
    # attempt on this node and the driver (for its own node) remove it.
    work = work_dir(config["run_name"]) / f"rank{rank}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    if rank != 0:
        req = dataclasses.replace(req, out=work / "task")
    fail_at = int(config.get("fail_at_step") or os.environ.get(FAIL_AT_STEP_ENV) or 0)
    pending: list[tuple[int, Path]] = []  # (step, local dir) of a state not reported yet

    def checkpoint_cb(step: int, state: dict) -> None:
        d = Path(tempfile.mkdtemp(prefix=f"ckpt-{step}-", dir=work))
        torch.save(state, d / STATE_FILE.format(rank=rank))
        pending.append((step, d))

    def report(metrics: dict) -> None:
        if fail_at and resume is None and rank == 0 and metrics["step"] >= fail_at:
            raise RuntimeError(f"injected failure at step {metrics['step']} (fail_at_step={fail_at})")
        if world > 1:
            metrics = _mean_over_workers(metrics)
        rows.append(dict(metrics))
        if not pending:
            ray.train.report(metrics)
            return
        step, d = pending[-1]
        for _, older in pending[:-1]:  # checkpoint_every < report_every: only the newest state is kept
            shutil.rmtree(older, ignore_errors=True)
        pending.clear()
        if rank == 0:  # the reported rows up to the state's step travel with it
            (d / ROWS_FILE).write_text(json.dumps([r for r in rows if r["step"] <= step]))
        try:
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(str(d)))
        finally:
            shutil.rmtree(d, ignore_errors=True)

    nodes = _gather_nodes(world)
    hooks = WorkerHooks(resume=resume, checkpoint_cb=checkpoint_cb, checkpoint_every=int(config["checkpoint_every"]),
                        grad_sync=_allreduce_mean if world > 1 else None,
                        data_seed=req.cfg.seed * 1000 + rank if world > 1 else None,
                        on_step=step_writer(config.get("progress_file") if rank == 0 else None, req.cfg.steps))
    marks["model_ready"] = time.time()
    try:
        result = run_request(req, with_system_metrics(report), hooks)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if rank != 0:
        return None
    marks["trained"] = time.time()
    return {"rows": rows, "seconds": result.seconds, "step_seconds": result.step_seconds, "marks": marks,
            "resumed_from_step": result.resumed_from_step, "relevant_prompts": result.relevant_prompts,
            "worker_nodes": nodes}


def train_on_ray(req: TrainRequest, ray_cfg: RayConfig, state_dir: Path, on_report: Report | None = None) -> TaskResult:
    """Train one concept as a Ray Train job; `req.out` receives the task checkpoint. `on_report` gets
    each reported metrics row (step + mean losses since the previous report), in the driver, after the
    run. Raises RuntimeError naming the concept if the run fails for good."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from components.training.concept import read_concept

    start = time.time()
    ensure_ray(ray_cfg, state_dir)
    train_env(ray_cfg)  # also when Ray was started elsewhere in this process
    name = read_concept(Path(req.concept_dir)).name
    cpus = cpus_per_worker(ray_cfg)
    threads = max(1, int(cpus))
    absolute = lambda p: Path(os.path.abspath(p)) if p else None  # noqa: E731
    # A named attempt resumes from its stored checkpoints (Ray Train restores a run of the same name);
    # an unnamed one gets a fresh name and never resumes an old run.
    run_name = req.run_name or f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    request = dataclasses.replace(req, base_dir=absolute(req.base_dir), concept_dir=absolute(req.concept_dir),
                                  previous_checkpoint=absolute(req.previous_checkpoint))
    loop_config = {"run_name": run_name, "request": request, "checkpoint_every": ray_cfg.checkpoint_every,
                   "threads": threads, "cwd": os.getcwd(), "fail_at_step": int(os.environ.get(FAIL_AT_STEP_ENV) or 0),
                   "progress_file": progress_path(run_storage(ray_cfg, state_dir), run_name)}  # None off a terminal
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_config,
        # The trainable tensors live on the CPU whatever use_gpu says, so the process group is gloo.
        torch_config=TorchConfig(backend="gloo"),
        scaling_config=ScalingConfig(num_workers=ray_cfg.num_workers, use_gpu=ray_cfg.use_gpu,
                                     resources_per_worker={"CPU": cpus} | dict(ray_cfg.worker_resources),
                                     placement_strategy=ray_cfg.placement_strategy),
        run_config=RunConfig(
            name=run_name,
            storage_path=run_storage(ray_cfg, state_dir),
            failure_config=FailureConfig(max_failures=ray_cfg.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=1),
            worker_runtime_env={"env_vars": {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}},
        ),
    )
    fit_start = time.time()
    try:
        with follow(loop_config["progress_file"], f"training {name}"):  # the worker's steps, while fit() runs
            result = trainer.fit()
    except Exception as e:
        raise RuntimeError(f"Ray training of concept {name!r} failed: {e}") from e
    finally:
        shutil.rmtree(work_dir(run_name), ignore_errors=True)
    if result.error is not None:
        raise RuntimeError(f"Ray training of concept {name!r} failed: {result.error}")
    ret = result.return_value
    if not ret:
        raise RuntimeError(f"Ray training of concept {name!r} returned nothing from rank 0 (run {run_name})")
    end, m = time.time(), ret.get("marks", {})
    if m:  # where the fixed cost goes (clocks of one machine, or of NTP-synced nodes)
        log.info("ray task %s: setup %.1fs, fit->worker loop %.1fs, model+imports %.1fs, train %.1fs, "
                 "worker->fit return %.1fs", name, fit_start - start, m["loop_start"] - fit_start,
                 m["model_ready"] - m["loop_start"], m["trained"] - m["model_ready"], end - m["trained"])
    rows = [dict(r) for r in ret["rows"]]
    for row in rows if on_report is not None else ():
        on_report(row)
    return TaskResult(Path(req.out), float(ret["seconds"]), float(ret["step_seconds"]), rows,
                      list(ret["relevant_prompts"]), resumed_from_step=int(ret["resumed_from_step"]),
                      wall_seconds=time.time() - start, worker_nodes=list(ret.get("worker_nodes", [])))


def on_ray(ray_cfg: RayConfig, state_dir: Path) -> Launcher:
    """A launcher that trains each request as a Ray Train job (the pipeline's)."""

    def launch(req: TrainRequest, report: Report | None = None) -> TaskResult:
        return train_on_ray(req, ray_cfg, state_dir, report)

    return launch
