"""One Ray Train fit for a whole sequence: the worker group starts once and trains task after task.

Why: a fit per task starts Train's controller, its helper actors and the workers afresh, each a new
process paying its imports before the first step (~18 s per concept on this machine against ~20 s of
training; docs/results.md, "The 8 s orchestration target"). Inside `warm_training(...)` the pipeline's
launcher (`components.chains.onboard.launcher`) is a `WarmLauncher` instead: its fit's workers ask a
`TaskBoard` actor for the next request, train it with the same `worker.train_one` as a one-task fit,
hand the result back through the board and wait for the next one; the fit ends when the scope does.

Fault tolerance is the one-task fit's, per attempt:
- a crashed worker group restarts inside the fit (`FailureConfig`); its rank 0 is handed the request in
  flight again and resumes from the last reported checkpoint, which names its attempt (`request.txt`);
- a killed driver: the fit's run name is fixed (`WARM_RUN`), so the rerun's fit restores its storage, and
  the first task resumes from it only if it is the same attempt (same chain, dataset and method).
A single `lfsd onboard` keeps one fit per task (`job`): a warm group would only add the board.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from components.config import RayConfig
from components.ray_train.job import attempt_name, loop_config, task_result, trainer
from components.ray_train.progress_file import follow
from components.ray_train.runtime import cpus_per_worker, drop_run, ensure_ray, require_gpus, train_env, work_dir
from components.ray_train.worker import FAIL_AT_STEP_ENV, gather_nodes, train_one, worker_setup
from components.training.launch import TrainRequest
from components.training.loop import Report, TaskResult

WARM_RUN = "warm-sequence"  # Ray Train run name of the warm fit (its storage is dropped when the scope ends)
POLL_S = 2.0  # how long one board call blocks; the other ranks wait at most this long in a broadcast
WAIT = "wait"  # what `TaskBoard.take` hands out when nothing came within its timeout

log = logging.getLogger(__name__)


class TaskBoard:
    """The requests of one warm fit, as a Ray actor (`_board`): the driver submits, rank 0 takes one at a
    time and finishes it. A request stays in flight until finished, so a restarted worker group takes it
    again."""

    def __init__(self):
        self.cv = threading.Condition()
        self.queue: deque = deque()
        self.in_flight: tuple | None = None
        self.results: dict[str, dict | None] = {}
        self.closed = False

    def submit(self, rid: str, item: tuple) -> None:
        with self.cv:
            self.queue.append((rid, item))
            self.cv.notify_all()

    def take(self, timeout: float):
        """(rid, item) in flight, or the next one; None once closed and drained; WAIT after `timeout`."""
        with self.cv:
            self.cv.wait_for(lambda: self.in_flight or self.queue or self.closed, timeout)
            if self.in_flight is None and self.queue:
                self.in_flight = self.queue.popleft()
            if self.in_flight is not None:
                return self.in_flight
            return None if self.closed else WAIT

    def finish(self, rid: str, result: dict | None) -> None:
        with self.cv:
            self.results[rid] = result
            self.in_flight = None
            self.cv.notify_all()

    def result(self, rid: str, timeout: float) -> tuple[bool, dict | None]:
        """(True, rank 0's return) once `rid` is finished, else (False, None) after `timeout`."""
        with self.cv:
            done = self.cv.wait_for(lambda: rid in self.results, timeout)
            return (True, self.results.pop(rid)) if done else (False, None)

    def close(self) -> None:
        with self.cv:
            self.closed = True
            self.cv.notify_all()


def _board():
    import ray

    return ray.remote(num_cpus=0, max_concurrency=4)(TaskBoard).remote()


def _next(board, rank: int, world: int):
    """The next (rid, item) for every rank of the group (rank 0 asks the board), or None: the end."""
    import ray

    while True:
        item = ray.get(board.take.remote(POLL_S)) if rank == 0 else None
        if world > 1:
            import torch.distributed as dist

            box = [item]
            dist.broadcast_object_list(box, src=0)
            item = box[0]
        if item != WAIT:
            return item


def warm_loop_per_worker(config: dict) -> None:
    """One worker of the warm fit: set up once, then train each request the board hands out."""
    import ray

    rank, world = worker_setup(config)
    nodes = gather_nodes(world)
    board = config["board"]
    while (taken := _next(board, rank, world)) is not None:
        rid, (req, progress_file) = taken
        ret = train_one(config, req, rid, rank, world, nodes, progress_file)
        if rank == 0:
            ray.get(board.finish.remote(rid, ret))


class WarmLauncher:
    """A launcher (TrainRequest -> TaskResult) whose requests all go to one running fit."""

    def __init__(self, ray_cfg: RayConfig, state_dir: Path):
        ensure_ray(ray_cfg, state_dir)
        require_gpus(ray_cfg)
        train_env(ray_cfg)
        self.ray_cfg, self.state_dir, self.error = ray_cfg, Path(state_dir), None
        self.board = _board()
        config = {
            "board": self.board,
            "checkpoint_every": ray_cfg.checkpoint_every,
            "cwd": os.getcwd(),
            "threads": max(1, int(cpus_per_worker(ray_cfg))),
            "fail_at_step": int(os.environ.get(FAIL_AT_STEP_ENV) or 0),
        }
        self.fit = trainer(warm_loop_per_worker, config, ray_cfg, state_dir, WARM_RUN)
        self.thread = threading.Thread(target=self._run, name="lfsd-warm-fit", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.error = self.fit.fit().error
        except Exception as e:
            self.error = e

    def __call__(self, req: TrainRequest, report: Report | None = None) -> TaskResult:
        import ray

        from components.training.concept import read_concept

        start, name, rid = time.time(), read_concept(Path(req.concept_dir)).name, attempt_name(req)
        config = loop_config(req, self.ray_cfg, self.state_dir, rid)
        ray.get(self.board.submit.remote(rid, (config["request"], config["progress_file"])))
        try:
            with follow(config["progress_file"], f"training {name}"):
                while not (answer := ray.get(self.board.result.remote(rid, POLL_S)))[0]:
                    if not self.thread.is_alive():
                        raise RuntimeError(
                            f"Ray training of concept {name!r} failed: {self.error or 'the warm worker group ended'}"
                        )
        finally:
            shutil.rmtree(work_dir(rid), ignore_errors=True)
        ret = answer[1]
        if ret and ret.get("marks"):
            m = ret["marks"]
            log.info(
                "warm ray task %s: submit->loop %.1fs, model+imports %.1fs, train %.1fs, return %.1fs",
                name,
                m["loop_start"] - start,
                m["model_ready"] - m["loop_start"],
                m["trained"] - m["model_ready"],
                time.time() - m["trained"],
            )
        return task_result(req, ret, name, rid, start, report)

    def close(self, timeout: float = 120.0) -> None:
        """End the fit (its workers leave their loop once the task in flight, if any, is done), then drop
        its storage: every task it trained was handed back, so nothing is left to resume. Still running
        after `timeout`: left to end with the process (Ray stops it), its storage kept for a rerun."""
        import ray

        with contextlib.suppress(Exception):  # a board already gone (Ray stopped) has nothing left to end
            ray.get(self.board.close.remote())
        self.thread.join(timeout)
        if not self.thread.is_alive():
            with contextlib.suppress(Exception):
                ray.kill(self.board)
            drop_run(self.ray_cfg, self.state_dir, WARM_RUN)


class _Scope:
    """The warm launcher of the innermost open scope, started at its first request."""

    def __init__(self, ray_cfg: RayConfig, state_dir: Path):
        self.ray_cfg, self.state_dir, self.launcher = ray_cfg, state_dir, None

    def __call__(self, req: TrainRequest, report: Report | None = None) -> TaskResult:
        if self.launcher is None:
            self.launcher = WarmLauncher(self.ray_cfg, self.state_dir)
        return self.launcher(req, report)


_ACTIVE: _Scope | None = None


def active():
    """The open scope's launcher, or None (a single onboarding: one fit per task)."""
    return _ACTIVE


@contextmanager
def warm_training(ray_cfg: RayConfig, state_dir: Path, enabled: bool = True) -> Iterator[None]:
    """Within: the pipeline trains on one worker group, started at the first task and ended on leaving.
    Nested scopes share the outer one (an inbox tick's sequences)."""
    global _ACTIVE
    if not enabled or not ray_cfg.enabled or _ACTIVE is not None:
        yield
        return
    _ACTIVE = scope = _Scope(ray_cfg, state_dir)
    try:
        yield
    except BaseException:
        # Leaving on an error (Ctrl-C mid-task included): do not wait for a task in flight to finish; its
        # resumable state stays in the run storage for the rerun.
        if scope.launcher is not None:
            scope.launcher.close(timeout=5.0)
        raise
    else:
        if scope.launcher is not None:
            scope.launcher.close()
    finally:
        _ACTIVE = None
