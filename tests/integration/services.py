"""Real services for integration tests, started on 127.0.0.1 and stopped by the test."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

_GIVEN: set[int] = set()


def free_port() -> int:
    """A port free now and never handed out before by this process: the OS may give the same free port to two
    binds in a row once the first socket is closed, and a command line that names it twice (Ray's client
    server and dashboard ports, CI 2026-12-04) refuses to start."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


def mlflow_cli() -> list[str]:
    exe = Path(sys.executable).with_name("mlflow")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "mlflow"]


def wait_http(url: str, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1)
    raise TimeoutError(f"{url} not ready after {timeout:.0f} s:\n{log.read_text()[-4000:]}")


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


@contextlib.contextmanager
def mlflow_server(workdir: Path):
    """`mlflow server` (sqlite + artifact proxy, 1 worker) on a free port; yields its URI."""
    port = free_port()
    log = workdir / "mlflow-server.log"
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    proc = None
    try:
        with log.open("w") as out:
            proc = subprocess.Popen(
                [
                    *mlflow_cli(),
                    "server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--workers",
                    "1",
                    "--backend-store-uri",
                    f"sqlite:///{workdir / 'server.db'}",
                    "--artifacts-destination",
                    str(workdir / "server-artifacts"),
                ],
                cwd=workdir,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        uri = f"http://127.0.0.1:{port}"
        wait_http(f"{uri}/health", proc, 120, log)
        yield uri
    finally:
        stop(proc)


def _session_pids(sid: int) -> list[int]:
    """Live processes of the session we created for the head (Ray's daemons and workers inherit it)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                if os.getsid(int(entry.name)) == sid and stat.rsplit(")", 1)[1].split()[0] != "Z":
                    pids.append(int(entry.name))
            except (OSError, IndexError):
                pass
    return pids


def _refresh_ray_auth() -> None:
    """This process read RAY_AUTH_MODE when it imported ray, and may have cached a token: re-read both."""
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def restore_ray_env(saved: dict[str, str | None]) -> None:
    """Disconnect this process from a test's Ray and put its Ray variables back as they were."""
    from components.ray_train.runtime import shutdown_ray

    shutdown_ray()
    for var, value in saved.items():
        if value is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = value
    _refresh_ray_auth()


@contextlib.contextmanager
def ray_head(num_cpus: int = 2):
    """`ray start --head --block` on 127.0.0.1 in its own session, with token auth and a token of its
    own; RAY_ADDRESS (and the token) point this process at it inside the block. The temp dir is short
    (unix socket paths live under it). Stopping kills only this head's session (`ray stop` would stop
    every Ray on the machine; gcs_server and `ray start` ignore SIGTERM)."""
    import secrets
    import shutil
    import tempfile

    from components.ray_train.runtime import AUTH_ENV, shutdown_ray

    shutdown_ray()  # a Ray started earlier in this process would otherwise be reused
    temp = Path(tempfile.mkdtemp(prefix="lfsdrt", dir="/tmp"))
    port = free_port()
    cmd = [
        str(Path(sys.executable).parent / "ray"),
        "start",
        "--head",
        "--block",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        f"--num-cpus={num_cpus}",
        "--num-gpus=0",
        f"--temp-dir={temp}",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--ray-client-server-port={free_port()}",
        f"--dashboard-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        "--object-store-memory=200000000",
    ]
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    saved = {v: os.environ.get(v) for v in ("RAY_ADDRESS", *AUTH_ENV)}
    env = {k: v for k, v in os.environ.items() if k not in AUTH_ENV} | auth | {"RAY_USAGE_STATS_ENABLED": "0"}
    log = open(temp / "head.log", "w")  # noqa: SIM115 -- the head process writes it until the fixture stops it
    head = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    try:
        deadline = time.time() + 180
        while "Ray runtime started" not in (temp / "head.log").read_text():
            if head.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"ray head did not start:\n{(temp / 'head.log').read_text()[-3000:]}")
            time.sleep(0.5)
        os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
        os.environ.update(auth | {"RAY_ADDRESS": f"127.0.0.1:{port}"})
        _refresh_ray_auth()
        yield f"127.0.0.1:{port}"
    finally:
        restore_ray_env(saved)
        for sig, wait in ((signal.SIGTERM, 2), (signal.SIGKILL, 10)):
            for pid in _session_pids(head.pid):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.time() + wait
            while _session_pids(head.pid) and time.time() < deadline:
                time.sleep(0.2)
            if not _session_pids(head.pid):
                break
        head.wait(timeout=10)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


@contextlib.contextmanager
def prefect_server(workdir: Path):
    """`prefect server start` on a free port with a home of its own; yields its API URL. One server per
    test session spares every `lfsd` process the ~15-28 s of starting a temporary API of its own."""
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    log = workdir / "prefect-server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")} | {
        "PREFECT_HOME": str(workdir / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_URL": api,
    }
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("prefect")), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_http(f"{api}/health", proc, 240, log)
        yield api
    finally:
        stop(proc)


def cli_env(workspace: Path, prefect_api: str | None = None, **extra) -> dict:
    """The environment of an `lfsd` process on `workspace`: no endpoint of this test process leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "MLFLOW_", "RAY_ADDRESS", "LFSD_"))}
    env |= {"LFSD_STATE_DIR": str(workspace / ".lfsd"), "HF_HUB_OFFLINE": "1", "GX_ANALYTICS_ENABLED": "false"}
    if prefect_api:
        env["PREFECT_API_URL"] = prefect_api
    return env | extra
