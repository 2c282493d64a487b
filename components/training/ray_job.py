"""One lifelong task as a Ray Train (V2) job: theta_{k-1} + concept C_k -> theta_k on Ray workers.

The driver (`train_task_on_ray`) starts nothing heavy itself: `ensure_ray` connects to the cluster in
RAY_ADDRESS, or starts one local Ray per process, once; each call then runs a `TorchTrainer` whose
workers rebuild theta_{k-1} from its checkpoint folder and run the same `train_task` as the in-process
path. Ray Train adds what the in-process loop lacks:

- fault tolerance: every `RayConfig.checkpoint_every` steps each worker reports a small resumable state
  (this task's LoRA and token row, optimizer moments, step, RNG and KD-bank state); a crashed worker
  group is restarted (`FailureConfig(max_failures)`) and continues from the last one;
- data parallelism: with `num_workers > 1` every worker draws its own batches and the trainable
  tensors' gradients are all-reduced (averaged) before each optimizer step (DDP semantics without
  wrapping the peft UNet in DDP, whose bucketed hooks would also cover the frozen base).

Only rank 0 writes the final task checkpoint to `out`, a plain path: on a multi-node cluster it must
be on storage every node sees (docs/ray.md). This module must not import prefect.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from components.config import RayConfig, TrainingConfig
from components.training.trainer import TaskResult

HEALTH_CHECK_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"  # read by the Train V2 controller, propagated by fit()
FAIL_AT_STEP_ENV = "LFSD_RAY_FAIL_AT_STEP"  # test-only fault injection (see train_loop_per_worker)
LOG_TO_DRIVER_ENV = "LFSD_RAY_LOG_TO_DRIVER"  # 1: stream worker/controller logs into this process
AUTH_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")  # Ray's token authentication
STATE_FILE = "state-rank{rank}.pt"
ROWS_FILE = "reported.json"
# A Ray session puts unix sockets at <temp>/session_<date>_<time>_<usec>_<pid>/sockets/plasma_store
# (about 66 characters below <temp>); Linux allows 107 in all.
_SOCKET_SUFFIX_CHARS = 70
_UNIX_SOCKET_MAX = 107

log = logging.getLogger(__name__)


def ray_temp_dir(state_dir: Path) -> Path:
    """`state_dir/ray` when the socket paths under it fit, else /tmp/lfsd-ray-<user>."""
    preferred = Path(os.path.abspath(Path(state_dir) / "ray"))
    if len(str(preferred)) + _SOCKET_SUFFIX_CHARS <= _UNIX_SOCKET_MAX:
        return preferred
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry (some containers)
        user = str(os.getuid())
    return Path("/tmp") / f"lfsd-ray-{user}"


def _train_env(cfg: RayConfig) -> None:
    """Environment the Train V2 driver reads at fit() and propagates to the controller and workers."""
    os.environ[HEALTH_CHECK_ENV] = str(cfg.health_check_interval_s)
    os.environ["RAY_CHDIR_TO_TRIAL_DIR"] = "0"  # workers keep the driver's cwd: relative ledger paths work
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_TRAIN_ENABLE_STATE_TRACKING", "0")


def ensure_ray(cfg: RayConfig, state_dir: Path) -> None:
    """ray.init once per process. RAY_ADDRESS set: connect to that cluster. Unset: a local Ray with
    `num_workers * cpus_per_worker` CPUs, no dashboard, its temp dir under `state_dir` (see
    `ray_temp_dir`). Later calls do nothing, whatever their arguments.

    Worker and controller logs stay in the session's log folder unless LFSD_RAY_LOG_TO_DRIVER=1:
    without a dashboard the Train controller's helpers log a State-API warning every second, and a
    failed run's worker traceback comes back in the raised error anyway."""
    import ray

    _train_env(cfg)
    if ray.is_initialized():
        return
    log_to_driver = os.environ.get(LOG_TO_DRIVER_ENV, "0").lower() in ("1", "true", "yes")
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=log_to_driver, logging_level=logging.WARNING)
        return
    # Local: nothing can preempt the node; the watcher would only cost a process per run.
    os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    # Ray starts workers at niceness 15: beside any other busy process on a laptop the training worker
    # starves (measured: a 20 s task took over 5 minutes next to a benchmark). Train at normal priority.
    os.environ.setdefault("RAY_worker_niceness", "0")
    temp = ray_temp_dir(state_dir)
    temp.mkdir(parents=True, exist_ok=True)
    if not any(v in os.environ for v in AUTH_ENV):
        # A new local Ray turns token auth on and would write the token to ~/.ray/auth_token (where a
        # later `ray start` also picks it up): keep it with the rest of the Ray state instead.
        token = temp / "auth_token"
        if not token.is_file():
            token.touch(mode=0o600)
            token.write_text(secrets.token_hex(32))
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)  # ray.init itself then switches token mode on
    ray.init(
        num_cpus=max(1, cfg.num_workers * cfg.cpus_per_worker),
        num_gpus=None if cfg.use_gpu else 0,
        include_dashboard=False,
        log_to_driver=log_to_driver,
        logging_level=logging.WARNING,
        object_store_memory=256 * 1024**2,  # only small checkpoints and configs travel through it
        _temp_dir=str(temp),
        _node_ip_address="127.0.0.1",  # a local Ray listens on loopback only
    )


def shutdown_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def _cpus_per_worker(cfg: RayConfig) -> float:
    """cfg.cpus_per_worker, capped at what one node has and at the cluster's share per worker."""
    import ray

    total = float(ray.cluster_resources().get("CPU", 0.0))
    per_node = max((float(n["Resources"].get("CPU", 0.0)) for n in ray.nodes() if n.get("Alive")), default=total)
    cap = min(per_node, total / max(1, cfg.num_workers))
    return float(cfg.cpus_per_worker) if cap <= 0 else min(float(cfg.cpus_per_worker), cap)


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


def _work_dir(run_name: str) -> Path:
    return Path(tempfile.gettempdir()) / "lfsd-ray-work" / run_name


def train_loop_per_worker(config: dict) -> dict | None:
    """One Ray Train worker: rebuild theta_{k-1}, restore the last resumable state if Ray restarted
    us, run `train_task`, report every `report_every` steps (with a checkpoint every `checkpoint_every`).

    `fail_at_step` (config key or LFSD_RAY_FAIL_AT_STEP) is test-only fault injection: rank 0 raises at
    the first report at or after that step, unless it resumed from a checkpoint."""
    marks = {"loop_start": time.time()}
    threads = int(config["threads"])
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    import ray.train

    from components.training.concept import read_concept
    from components.training.lifelong import LifelongModel
    from components.training.methods import get_method
    from components.training.trainer import train_task

    if config.get("cwd") and Path(config["cwd"]).is_dir():
        os.chdir(config["cwd"])  # relative paths (ledger entries, out) mean what they mean to the driver
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    cfg: TrainingConfig = config["training"]

    resume, rows = None, []
    restored = ray.train.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as d:
            path = Path(d) / STATE_FILE.format(rank=rank)
            if not path.is_file():  # the world size changed: take rank 0's weights (same on every rank)
                path = Path(d) / STATE_FILE.format(rank=0)
            resume = torch.load(path, weights_only=True)
            if (Path(d) / ROWS_FILE).is_file():
                rows = json.loads((Path(d) / ROWS_FILE).read_text())

    if config.get("previous_checkpoint"):
        model = LifelongModel.from_checkpoint(Path(config["previous_checkpoint"]), Path(config["base_dir"]))
    else:
        model = LifelongModel.from_base(Path(config["base_dir"]), config["method"])
    concept = read_concept(Path(config["concept_dir"]))
    marks["model_ready"] = time.time()
    # Local scratch per run and rank: a worker killed mid-run (its peer failed) leaves it behind; the next
    # attempt on this node and the driver (for its own node) remove it.
    work = _work_dir(config["run_name"]) / f"rank{rank}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    out = config["out"] if rank == 0 else work / "task"
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

    data_seed = cfg.seed * 1000 + rank if world > 1 else None
    try:
        result = train_task(model, concept, get_method(config["method"]), cfg, out, references=config["references"],
                            report=report, resume=resume, checkpoint_cb=checkpoint_cb,
                            checkpoint_every=int(config["checkpoint_every"]),
                            grad_sync=_allreduce_mean if world > 1 else None, data_seed=data_seed)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if rank != 0:
        return None
    marks["trained"] = time.time()
    return {"rows": rows, "seconds": result.seconds, "step_seconds": result.step_seconds, "marks": marks,
            "resumed_from_step": result.resumed_from_step, "relevant_prompts": result.relevant_prompts}


def train_task_on_ray(
    *,
    base_dir: Path,
    previous_checkpoint: Path | None,
    concept_dir: Path,
    references: str,
    out: Path,
    method: str,
    cfg: TrainingConfig,
    ray_cfg: RayConfig,
    state_dir: Path,
    on_report: Callable[[dict], None] | None = None,
) -> TaskResult:
    """Train one concept as a Ray Train job; `out` receives the task checkpoint (as `train_task` writes
    it). `on_report` gets each reported metrics row (step + mean losses since the previous report),
    in the driver, after the run. Raises RuntimeError naming the concept if the run fails for good."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from components.training.concept import read_concept

    start = time.time()
    ensure_ray(ray_cfg, state_dir)
    _train_env(ray_cfg)  # also when Ray was started elsewhere in this process
    name = read_concept(Path(concept_dir)).name
    cpus = _cpus_per_worker(ray_cfg)
    threads = max(1, int(cpus))
    absolute = lambda p: str(Path(os.path.abspath(p)))  # noqa: E731
    run_name = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"  # fresh: never auto-resume an old run
    loop_config = {
        "run_name": run_name,
        "base_dir": absolute(base_dir),
        "previous_checkpoint": absolute(previous_checkpoint) if previous_checkpoint else None,
        "concept_dir": absolute(concept_dir),
        "references": references,
        "out": str(out),  # as given: the ledger records it exactly as the in-process path does
        "method": method,
        "training": cfg,
        "checkpoint_every": ray_cfg.checkpoint_every,
        "threads": threads,
        "cwd": os.getcwd(),
        "fail_at_step": int(os.environ.get(FAIL_AT_STEP_ENV) or 0),
    }
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_config,
        # The trainable tensors live on the CPU whatever use_gpu says, so the process group is gloo.
        torch_config=TorchConfig(backend="gloo"),
        scaling_config=ScalingConfig(num_workers=ray_cfg.num_workers, use_gpu=ray_cfg.use_gpu,
                                     resources_per_worker={"CPU": cpus}),
        run_config=RunConfig(
            name=run_name,
            storage_path=absolute(Path(state_dir) / "ray_results"),
            failure_config=FailureConfig(max_failures=ray_cfg.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=1),
            worker_runtime_env={"env_vars": {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}},
        ),
    )
    fit_start = time.time()
    try:
        result = trainer.fit()
    except Exception as e:
        raise RuntimeError(f"Ray training of concept {name!r} failed: {e}") from e
    finally:
        shutil.rmtree(_work_dir(run_name), ignore_errors=True)
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
    if on_report is not None:
        for row in rows:
            on_report(row)
    info = json.loads((Path(out) / "training.json").read_text())
    return TaskResult(Path(out), float(ret["seconds"]), float(ret["step_seconds"]), rows,
                      list(info.get("relevant_prompts", [])), resumed_from_step=int(ret["resumed_from_step"]),
                      wall_seconds=time.time() - start)
