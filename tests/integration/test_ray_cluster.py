"""One concept trained on a two-node Ray cluster: a head and a second node started on this machine as
real `ray start --block` processes (no mocks), one Train worker per node (STRICT_SPREAD), DDP over gloo.

Both nodes share this machine's disk, so a local `state_dir` serves as the shared storage a real cluster
needs (docs/ray.md, "Two nodes, tested here")."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

NODE2_RESOURCE = "node2"  # a custom resource only the second node declares


def _ray_cli() -> str:
    return str(Path(sys.executable).parent / "ray")


def _node_ports() -> list[str]:
    """Every port a node would otherwise take from a fixed default (two nodes on one machine, and other
    engineers' Rays beside them, must not collide)."""
    from tests.integration.services import free_port

    return [
        f"--node-manager-port={free_port()}",
        f"--object-manager-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
    ]


def _pids_of(sid: int) -> list[int]:
    from tests.integration.services import _session_pids

    return _session_pids(sid)


def _kill_session(proc: subprocess.Popen) -> None:
    """SIGTERM then SIGKILL every live process of the session `proc` leads (gcs_server and `ray start`
    ignore SIGTERM); never `ray stop`, which would stop every Ray on the machine."""
    for sig, wait in ((signal.SIGTERM, 2), (signal.SIGKILL, 10)):
        for pid in _pids_of(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.time() + wait
        while _pids_of(proc.pid) and time.time() < deadline:
            time.sleep(0.2)
        if not _pids_of(proc.pid):
            break
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def _wait_until(ready, proc: subprocess.Popen, log: Path, what: str, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while not ready():
        if proc.poll() is not None or time.time() > deadline:
            raylet = [f.read_text()[-1500:] for f in log.parent.glob("session_*/logs/raylet*.err") if f.stat().st_size]
            raise RuntimeError(
                f"{what} did not start (rc={proc.poll()}):\n{log.read_text()[-3000:]}\n"
                f"raylet.err:\n{''.join(raylet)[-3000:]}"
            )
        time.sleep(0.5)


@contextlib.contextmanager
def two_node_cluster(started: list[subprocess.Popen] | None = None):
    """A Ray head and a second node on this machine, 1 CPU each, token auth with a throwaway token, each
    in its own session with a short temp dir under /tmp (unix socket paths live below it, see
    `ray_temp_dir`). `--node-ip-address=127.0.0.1` as in `services.ray_head`, although `ray start` turns a
    loopback address into this machine's own. Inside the block RAY_ADDRESS and the token point this
    process at the head. Yields the head's address. Every `ray start` process,
    failed tries included, is appended to `started` as soon as it runs (the caller can check they are gone
    even when the cluster failed to start); on exit all their sessions are killed and this process's Ray
    environment is restored."""
    from components.ray_train.runtime import AUTH_ENV, shutdown_ray
    from tests.integration.services import _refresh_ray_auth, free_port, restore_ray_env

    shutdown_ray()  # a Ray started earlier in this process would otherwise be reused
    temps = [Path(tempfile.mkdtemp(prefix="lfsdh", dir="/tmp")), Path(tempfile.mkdtemp(prefix="lfsdn", dir="/tmp"))]
    port = free_port()
    address = f"127.0.0.1:{port}"
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    saved = {v: os.environ.get(v) for v in ("RAY_ADDRESS", *AUTH_ENV)}
    # RAY_worker_niceness=0 as `ensure_ray` sets for a local Ray: at Ray's default niceness 15 the Train
    # workers starve next to any busy process on this shared 2-core machine.
    env = (
        {k: v for k, v in os.environ.items() if k not in (*AUTH_ENV, "RAY_ADDRESS")}
        | auth
        | {"RAY_USAGE_STATS_ENABLED": "0", "RAY_worker_niceness": "0"}
    )
    common = [
        "--block",
        "--node-ip-address=127.0.0.1",
        "--num-cpus=1",
        "--num-gpus=0",
        "--disable-usage-stats",
        "--object-store-memory=100000000",
        "--min-worker-port=0",
        "--max-worker-port=0",
        "--include-log-monitor=false",
    ]  # logs stay in files (`ensure_ray` does not stream them either)
    head_cmd = [
        _ray_cli(),
        "start",
        "--head",
        f"--port={port}",
        f"--temp-dir={temps[0]}",
        *common,
        "--include-dashboard=false",
        f"--ray-client-server-port={free_port()}",
        f"--dashboard-port={free_port()}",
        *_node_ports(),
    ]
    node_cmd = [
        _ray_cli(),
        "start",
        f"--address={address}",
        f"--temp-dir={temps[1]}",
        *common,
        f"--resources={json.dumps({NODE2_RESOURCE: 1})}",
        *_node_ports(),
    ]
    procs: list[subprocess.Popen] = [] if started is None else started  # all are killed at the end
    logs = []
    try:
        # One after the other. `ray start` gives its raylet a fixed 30 s to register with the GCS ("The
        # current node timed out during startup"), and the raylet gives its dashboard agent a fixed time to
        # report its ports (raylet.err: "Check failed" in WaitForDashboardAgentPorts, a wait that
        # RAY_agent_register_timeout_ms does not govern). Both were missed when others loaded this shared
        # machine (load average 15-27): up to 3 tries per node, the later ones with a warm page cache.
        for cmd, temp, what in ((head_cmd, temps[0], "ray head"), (node_cmd, temps[1], "second ray node")):
            for attempt in (1, 2, 3):
                log = temp / f"node-{attempt}.log"
                logs.append(log.open("w"))
                procs.append(
                    subprocess.Popen(cmd, stdout=logs[-1], stderr=subprocess.STDOUT, start_new_session=True, env=env)
                )
                try:
                    _wait_until(lambda: "Ray runtime started" in log.read_text(), procs[-1], log, what)  # noqa: B023 -- called in this iteration only
                    break
                except RuntimeError:
                    _kill_session(procs[-1])
                    if attempt == 3 or "timed out during startup" not in log.read_text():
                        raise
        os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
        os.environ.update(auth | {"RAY_ADDRESS": address})
        _refresh_ray_auth()
        yield address
    finally:
        restore_ray_env(saved)
        for proc in reversed(procs):  # the second node first, then the head
            _kill_session(proc)
        for f in logs:
            f.close()
        for temp in temps:
            shutil.rmtree(temp, ignore_errors=True)


def _alive_nodes(want: int, timeout: float = 60) -> list[dict]:
    import ray

    deadline = time.time() + timeout
    while True:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        if len(nodes) == want or time.time() > deadline:  # a node that failed to start may linger a while
            return nodes
        time.sleep(0.5)


def _processes_mentioning(needles: list[str]) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,sid,args"], check=True, capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if any(n in line for n in needles)]


@pytest.mark.integration
@pytest.mark.slow
def test_one_concept_trains_with_one_worker_on_each_of_two_ray_nodes(tiny_base_dir, tmp_path):
    import ray
    import torch

    from components.config import load_params
    from components.lifelong import LifelongModel
    from components.model.sampling import generate
    from components.ray_train.job import train_on_ray
    from components.ray_train.runtime import ensure_ray
    from components.training.concept import read_concept
    from components.training.launch import TrainRequest
    from components.world.concepts import write_concepts

    params = load_params()
    cfg = dataclasses.replace(
        params.training,
        steps=4,
        batch_size=2,
        kd_batch_size=2,
        kd_trajectories=2,
        kd_teacher_steps=2,
        kd_refresh_every=2,
        report_every=2,
    )
    ray_cfg = dataclasses.replace(
        params.ray,
        num_workers=2,
        cpus_per_worker=1,
        checkpoint_every=2,
        health_check_interval_s=0.1,
        placement_strategy="STRICT_SPREAD",
    )
    concept_dir = write_concepts(tmp_path / "concepts", n=1, shots=3, seed=5)[0]
    concept = read_concept(concept_dir)
    out, state = tmp_path / "ckpt" / "01", tmp_path / "state"

    started: list[subprocess.Popen] = []  # the `ray start` processes, each leading its own session
    t0 = time.time()
    marks: dict[str, float] = {}  # phase -> seconds since t0 (printed; pytest shows them on failure)
    try:
        with two_node_cluster(started) as address:
            marks["cluster started"] = time.time() - t0
            assert os.environ["RAY_ADDRESS"] == address
            ensure_ray(ray_cfg, state)  # RAY_ADDRESS is set: joins the cluster, starts nothing
            nodes = _alive_nodes(2)
            marks["connected"] = time.time() - t0
            assert len(nodes) == 2, nodes
            second = [n["NodeID"] for n in nodes if NODE2_RESOURCE in n["Resources"]]
            head = [n["NodeID"] for n in nodes if NODE2_RESOURCE not in n["Resources"]]
            assert len(second) == 1 and len(head) == 1
            assert all(n["Resources"].get("CPU") == 1.0 for n in nodes)

            reported: list[dict] = []
            result = train_on_ray(
                TrainRequest(
                    base_dir=tiny_base_dir,
                    previous_checkpoint=None,
                    concept_dir=concept_dir,
                    references=str(concept_dir),
                    out=out,
                    method="lfs",
                    cfg=cfg,
                ),
                ray_cfg,
                state,
                reported.append,
            )
            marks["trained"] = time.time() - t0
            print(f"train_on_ray: wall {result.wall_seconds:.1f}s, train_task in rank 0 {result.seconds:.1f}s")

            # One worker per node, in rank order; exactly the head and the second node.
            assert len(result.worker_nodes) == 2 and len(set(result.worker_nodes)) == 2, result.worker_nodes
            assert set(result.worker_nodes) == {head[0], second[0]}
            assert [r["step"] for r in reported] == [2, 4] and all("denoise" in r for r in reported)
            assert result.checkpoint == out and result.resumed_from_step == 0
            assert (state / "ray_results").is_dir()
    finally:
        marks["cluster stopped"] = time.time() - t0
        print("phases (s since start):", {k: round(v, 1) for k, v in marks.items()}, "ray start runs:", len(started))
        # Both nodes are gone, whatever happened above.
        assert started, "no `ray start` process was started"
        leftovers = [pid for proc in started for pid in _pids_of(proc.pid)]
        temp_dirs = [a.split("=", 1)[1] for proc in started for a in proc.args if a.startswith("--temp-dir=")]
        ps_lines = _processes_mentioning(temp_dirs)  # also a process that left its session
        assert not leftovers and not ps_lines, (leftovers, ps_lines)
        assert not ray.is_initialized()

    # The checkpoint rank 0 wrote loads and generates, here, without Ray.
    assert (out / "ledger.json").is_file() and (out / "learned_embeds.safetensors").is_file()
    model = LifelongModel.from_checkpoint(out, tiny_base_dir)
    assert model.ledger.names() == [concept.name]
    images = generate(model.bundle, [concept.prompt("on a white background")], [0], steps=3)
    assert images.shape == (1, 3, 32, 32) and torch.isfinite(images).all()
