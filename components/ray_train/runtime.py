"""The Ray runtime one lfsd process trains on: started (or joined) once, never per concept.

`ensure_ray` connects to the cluster in RAY_ADDRESS, or starts one local Ray per process with its
state under the workspace's state folder; `train_env` sets what the Train V2 driver reads at fit().
This module must not import prefect.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import secrets
import stat
import tempfile
from pathlib import Path

from components.config import RayConfig
from components.device import DeviceError

RESULTS_DIR = "ray_results"  # under the state folder: Ray Train's run storage (default), one folder per run name

HEALTH_CHECK_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"  # read by the Train V2 controller, propagated by fit()
LOG_TO_DRIVER_ENV = "LFSD_RAY_LOG_TO_DRIVER"  # 1: stream worker/controller logs into this process
AUTH_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")  # Ray's token authentication
# A Ray session puts unix sockets at <temp>/session_<date>_<time>_<usec>_<pid>/sockets/plasma_store
# (about 66 characters below <temp>); Linux allows 107 in all.
_SOCKET_SUFFIX_CHARS = 70
_UNIX_SOCKET_MAX = 107
RAY_TEMP = "ray"


def private_home(state_dir: Path) -> Path:
    """The private folder (0700, see `private_dir`) that holds Ray's temp folder and auth token:
    `state_dir/private` when the socket paths under it fit, else /tmp/lfsd-<user>. Why a folder around
    Ray's: Ray makes every folder it creates, its temp folder included, 0777 so that other users can share
    it; inside a folder only this user can enter, nobody else reaches them."""
    preferred = Path(os.path.abspath(Path(state_dir) / "private"))
    if len(str(preferred / RAY_TEMP)) + _SOCKET_SUFFIX_CHARS <= _UNIX_SOCKET_MAX:
        return preferred
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry (some containers)
        user = str(os.getuid())
    return Path("/tmp") / f"lfsd-{user}"


def ray_temp_dir(state_dir: Path) -> Path:
    """Ray's `_temp_dir`: `ray` inside `private_home`."""
    return private_home(state_dir) / RAY_TEMP


class UnsafeRayTemp(DeviceError):
    """Ray's temp folder exists but another user could have planted something in it (its sockets, its
    auth token): refused, never reused. A machine-setup refusal, reported as one line like a device's."""


def private_dir(path: Path) -> Path:
    """`path` created 0700, or, when it exists, checked to be a real folder of this user with no group or
    other permission. Why refuse rather than repair: in a shared /tmp (the fallback) a folder someone else
    owns, or one others could write into, may already hold their token or sockets, which Ray would use."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    st = os.lstat(path)
    fix = f"remove it (`rm -rf {path}`) if it is yours, or set LFSD_STATE_DIR to a short private path"
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeRayTemp(f"Ray's private folder {path} is not a folder (a link or a file): refused; {fix}")
    if st.st_uid != os.getuid():
        raise UnsafeRayTemp(f"Ray's private folder {path} belongs to user id {st.st_uid}, not to you: refused; {fix}")
    if st.st_mode & 0o077:
        raise UnsafeRayTemp(
            f"Ray's private folder {path} has mode {stat.S_IMODE(st.st_mode):o}, not 700: others may have put "
            f"something in it; refused; {fix}"
        )
    return path


def train_env(cfg: RayConfig) -> None:
    """Environment the Train V2 driver reads at fit() and propagates to the controller and workers."""
    os.environ[HEALTH_CHECK_ENV] = str(cfg.health_check_interval_s)
    os.environ["RAY_CHDIR_TO_TRIAL_DIR"] = "0"  # workers keep the driver's cwd: relative ledger paths work
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_TRAIN_ENABLE_STATE_TRACKING", "0")


def require_gpus(cfg: RayConfig) -> None:
    """With `ray.use_gpu: true`, refuse before anything starts when the cluster has fewer GPUs than
    `ray.num_workers` (Ray would otherwise wait for them forever)."""
    import ray

    from components.device import DeviceError

    if cfg.enabled and cfg.use_gpu:
        gpus = ray.cluster_resources().get("GPU", 0)
        if gpus < cfg.num_workers:
            raise DeviceError(
                f"ray.use_gpu: true asks for {cfg.num_workers} GPU worker(s), the Ray cluster has {gpus:g} GPU(s); "
                f"set ray.use_gpu: false (CPU workers) or ray.num_workers <= {int(gpus)}, or add GPU nodes"
            )


def ensure_ray(cfg: RayConfig, state_dir: Path) -> None:
    """ray.init once per process. RAY_ADDRESS set: connect to that cluster. Unset: a local Ray with
    `num_workers * cpus_per_worker` CPUs, no dashboard, its temp dir under `state_dir` (see
    `ray_temp_dir`). Later calls do nothing, whatever their arguments; so does any call with
    `ray.enabled: false` (the pipeline then trains without Ray).

    Worker and controller logs stay in the session's log folder unless LFSD_RAY_LOG_TO_DRIVER=1:
    without a dashboard the Train controller's helpers log a State-API warning every second, and a
    failed run's worker traceback comes back in the raised error anyway."""
    if not cfg.enabled:
        return
    import ray

    train_env(cfg)
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
    home = private_dir(private_home(state_dir))
    temp = ray_temp_dir(state_dir)
    temp.mkdir(exist_ok=True)
    if not any(v in os.environ for v in AUTH_ENV):
        # A new local Ray turns token auth on and would write the token to ~/.ray/auth_token (where a
        # later `ray start` also picks it up): keep it with the rest of the Ray state instead.
        token = home / "auth_token"
        if not token.is_file():
            token.touch(mode=0o600)
            token.write_text(secrets.token_hex(32))
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)  # ray.init itself then switches token mode on
    kwargs = dict(
        num_cpus=max(1, cfg.num_workers * cfg.cpus_per_worker),
        num_gpus=None if cfg.use_gpu else 0,
        include_dashboard=False,
        log_to_driver=log_to_driver,
        logging_level=logging.WARNING,
        object_store_memory=256 * 1024**2,  # only small checkpoints and configs travel through it
        _temp_dir=str(temp),
        _node_ip_address="127.0.0.1",  # a local Ray listens on loopback only
    )
    for attempt in (1, 2, 3):
        try:
            ray.init(**kwargs)
            return
        except Exception as e:
            # Ray gives a local raylet a fixed 30 s to register; on a busy small machine it can miss that.
            if "timed out during startup" not in str(e) or attempt == 3:
                raise
            ray.shutdown()


def shutdown_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def cpus_per_worker(cfg: RayConfig) -> float:
    """cfg.cpus_per_worker, capped at what one node has and at the cluster's share per worker."""
    import ray

    total = float(ray.cluster_resources().get("CPU", 0.0))
    per_node = max((float(n["Resources"].get("CPU", 0.0)) for n in ray.nodes() if n.get("Alive")), default=total)
    cap = min(per_node, total / max(1, cfg.num_workers))
    return float(cfg.cpus_per_worker) if cap <= 0 else min(float(cfg.cpus_per_worker), cap)


def run_storage(ray_cfg: RayConfig, state_dir: Path) -> str:
    """Where Ray Train keeps each named run's resumable checkpoints: `ray.storage_path` (a folder every
    node mounts, or a URI such as s3://bucket/prefix that pyarrow can open), else `<state dir>/ray_results`
    (enough for one machine)."""
    if ray_cfg.storage_path:
        return ray_cfg.storage_path if "://" in ray_cfg.storage_path else os.path.abspath(ray_cfg.storage_path)
    return os.path.abspath(Path(state_dir) / RESULTS_DIR)


def work_dir(run_name: str) -> Path:
    """A run's local scratch on each node (a folder per rank): its workers and the driver remove it."""
    return Path(tempfile.gettempdir()) / "lfsd-ray-work" / run_name


def drop_run(ray_cfg: RayConfig, state_dir: Path, run_name: str) -> None:
    """Delete one named run's stored checkpoints (after its task was committed: nothing left to resume)."""
    import contextlib
    import shutil

    storage = run_storage(ray_cfg, state_dir)
    if "://" not in storage:
        shutil.rmtree(Path(storage) / run_name, ignore_errors=True)
        return
    import pyarrow.fs

    with contextlib.suppress(Exception):  # a store that refuses leaves a small, harmless folder behind
        fs, path = pyarrow.fs.FileSystem.from_uri(storage.rstrip("/") + "/" + run_name)
        fs.delete_dir(path)
