"""What a Ray Train worker does for one lifelong task, whichever fit it runs in: one fit per task
(`job`, a single `lfsd onboard`) or one fit for a whole sequence (`warm`).

`train_one` rebuilds theta_{k-1} from its checkpoint folder and runs `loop.train_task`, reporting every
`report_every` steps with a resumable state every `checkpoint_every` (`resume.py`). Each reported
checkpoint names the attempt it belongs to (`request.txt`), so a restarted worker group, or a rerun whose
fit restores the run's storage, resumes only the attempt the checkpoint was taken in. With more than one
worker the trainable tensors' gradients are all-reduced (averaged) before each optimizer step (DDP
semantics without wrapping the peft UNet in DDP, whose bucketed hooks would also cover the frozen base).
Only rank 0 writes the final task checkpoint (`req.out`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from components.ray_train.progress_file import step_writer
from components.ray_train.runtime import work_dir
from components.training.launch import TrainRequest

FAIL_AT_STEP_ENV = "LFSD_RAY_FAIL_AT_STEP"  # test-only fault injection (see train_one)
STATE_FILE = "state-rank{rank}.pt"
ROWS_FILE = "reported.json"
REQUEST_FILE = "request.txt"  # the attempt (run name) a checkpoint belongs to


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
        chunk = flat[offset : offset + g.numel()].view_as(g)
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


def gather_nodes(world: int) -> list[str]:
    """The Ray node id of every rank, in rank order (where each worker really ran)."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    if world == 1:
        return [node]
    import torch.distributed as dist

    nodes: list = [None] * world
    dist.all_gather_object(nodes, node)
    return [str(n) for n in nodes]


def restored_state(rank: int, run_name: str):
    """(resume state, reported rows) from the checkpoint Ray restarted this worker group with, if it was
    taken in the attempt `run_name`; else (None, [])."""
    import ray.train
    import torch

    restored = ray.train.get_checkpoint()
    if restored is None:
        return None, []
    with restored.as_directory() as d:
        owner = Path(d) / REQUEST_FILE
        if owner.is_file() and owner.read_text().strip() != run_name:
            return None, []  # an earlier task's state (one fit for a sequence): nothing to resume
        path = Path(d) / STATE_FILE.format(rank=rank)
        if not path.is_file():  # the world size changed: take rank 0's weights (same on every rank)
            path = Path(d) / STATE_FILE.format(rank=0)
        rows = json.loads((Path(d) / ROWS_FILE).read_text()) if (Path(d) / ROWS_FILE).is_file() else []
        return torch.load(path, weights_only=True), rows


def worker_setup(config: dict) -> tuple[int, int]:
    """Threads and working folder of this worker, once per worker process; returns (rank, world size)."""
    threads = int(config["threads"])
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    import ray.train

    if config.get("cwd") and Path(config["cwd"]).is_dir():
        os.chdir(config["cwd"])  # relative paths (ledger entries, out) mean what they mean to the driver
    ctx = ray.train.get_context()
    return ctx.get_world_rank(), ctx.get_world_size()


def _worker_device(req: TrainRequest) -> str:
    """Where this worker trains: the GPU Ray Train assigned it (`ray.use_gpu`), else the CPU."""
    import ray.train.torch

    device = ray.train.torch.get_device()
    return str(device) if device.type == "cuda" else "cpu"


def train_one(
    config: dict, req: TrainRequest, run_name: str, rank: int, world: int, nodes: list[str], progress_file: Path | None
) -> dict | None:
    """One task on this worker group: resume the attempt's last state if there is one, run the loop,
    report every `report_every` steps (with a checkpoint every `checkpoint_every`). Rank 0 returns what
    the driver needs; the other ranks return None.

    `fail_at_step` (config key or LFSD_RAY_FAIL_AT_STEP) is test-only fault injection: rank 0 raises at
    the first report at or after that step, unless it resumed from a checkpoint."""
    import ray.train
    import torch

    from components.training.launch import run_request
    from components.training.loop import WorkerHooks
    from components.training.system_metrics import with_system_metrics

    marks = {"loop_start": time.time()}
    resume, rows = restored_state(rank, run_name)
    # Local scratch per run and rank: a worker killed mid-run (its peer failed) leaves it behind; the next
    # attempt on this node and the driver (for its own node) remove it.
    work = work_dir(run_name) / f"rank{rank}"
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
        if rank == 0:  # the reported rows up to the state's step, and whose state it is, travel with it
            (d / ROWS_FILE).write_text(json.dumps([r for r in rows if r["step"] <= step]))
            (d / REQUEST_FILE).write_text(run_name)
        try:
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(str(d)))
        finally:
            shutil.rmtree(d, ignore_errors=True)

    hooks = WorkerHooks(
        resume=resume,
        checkpoint_cb=checkpoint_cb,
        checkpoint_every=int(config["checkpoint_every"]),
        grad_sync=_allreduce_mean if world > 1 else None,
        data_seed=req.cfg.seed * 1000 + rank if world > 1 else None,
        on_step=step_writer(progress_file if rank == 0 else None, req.cfg.steps),
    )
    marks["model_ready"] = time.time()
    try:
        result = run_request(req, with_system_metrics(report), hooks, device=_worker_device(req))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if rank != 0:
        return None
    marks["trained"] = time.time()
    return {
        "rows": rows,
        "seconds": result.seconds,
        "step_seconds": result.step_seconds,
        "marks": marks,
        "resumed_from_step": result.resumed_from_step,
        "relevant_prompts": result.relevant_prompts,
        "worker_nodes": nodes,
        "worker_pid": os.getpid(),
    }
