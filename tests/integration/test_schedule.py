"""`lfsd schedule` against a real Prefect server: the inbox deployment onboards a settled valid folder
exactly once and rejects an invalid one, runs one tick at a time, and stays scheduled (not paused,
limit 1) across a restart of the serve process and of the server itself.

Every process runs in a session of its own (`prefect server start`, `python -m components.cli
schedule` and what they start: flow-run subprocesses, a local Ray) and the whole session is stopped
at the end, whatever happened. A tick that fails for a reason other than validation (e.g. Ray not
starting in time on a busy machine) leaves the folder in the inbox for the next tick: the wait allows
for that.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import NO_RAY, REPO, git, make_workspace
from tests.integration.services import free_port, wait_http

DEPLOYMENT = "onboard-inbox/lfsd-inbox"
INTERVAL = 10
FOREIGN_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "RAY_ADDRESS",
    "RAY_AUTH_MODE",
    "RAY_AUTH_TOKEN",
    "RAY_AUTH_TOKEN_PATH",
    "LFSD_WORKSPACE",
    "LFSD_STATE_DIR",
)


def _session_pids(sid: int) -> list[int]:
    """Live (non-zombie) processes of session `sid`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if os.getsid(int(entry.name)) == sid and state != "Z":
                    pids.append(int(entry.name))
            except (OSError, IndexError):
                pass
    return pids


class Service:
    """A command in a session of its own, its output in a log file."""

    def __init__(self, name: str, cmd: list[str], env: dict, log: Path):
        self.name, self.log = name, log
        with log.open("a") as out:
            out.write(f"\n==== start {time.strftime('%H:%M:%S')}: {' '.join(cmd)}\n")
            out.flush()
            self.proc = subprocess.Popen(
                cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def tail(self, n: int = 6000) -> str:
        return f"--- {self.name} log ({self.log}):\n{self.log.read_text(errors='replace')[-n:]}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, grace: float = 60) -> None:
        """`sig` to the process (what `kill PID` or a service manager does) and up to `grace` seconds
        for it to exit, then SIGTERM and SIGKILL to whatever is left of its session (flow-run
        subprocesses, Ray)."""
        sid = self.proc.pid
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(sid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace)
        for signum in (signal.SIGTERM, signal.SIGKILL):
            if not _session_pids(sid):
                break
            for pid in _session_pids(sid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)
            deadline = time.time() + 10
            while _session_pids(sid) and time.time() < deadline:
                self.proc.poll()
                time.sleep(0.3)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


def _wait(what: str, check, timeout: float, services: list[Service], every: float = 2.0):
    deadline = time.time() + timeout
    while True:
        result = check()
        if result:
            return result
        dead = [s for s in services if not s.alive()]
        if dead or time.time() > deadline:
            why = f"{dead[0].name} exited {dead[0].proc.returncode}" if dead else f"not after {timeout:.0f} s"
            pytest.fail(f"{what}: {why}\n" + "\n".join(s.tail() for s in services))
        time.sleep(every)


def _prefect(api: str):
    """(deployment or None, its flow runs) read through the Prefect client."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        try:
            dep = client.read_deployment_by_name(DEPLOYMENT)
        except ObjectNotFound:
            return None, []
        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep.id])))
    return dep, runs


def _assert_scheduled_with_limit_one(dep) -> None:
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy

    assert dep is not None, f"{DEPLOYMENT} not found"
    assert dep.paused is False
    assert len(dep.schedules) == 1 and dep.schedules[0].active is True, dep.schedules
    assert dep.schedules[0].schedule.interval.total_seconds() == INTERVAL
    assert dep.global_concurrency_limit is not None and dep.global_concurrency_limit.limit == 1
    assert dep.concurrency_options.collision_strategy == ConcurrencyLimitStrategy.ENQUEUE


def _assert_one_run_at_a_time(runs) -> None:
    started = sorted((r for r in runs if r.start_time is not None), key=lambda r: r.start_time)
    for a, b in itertools.pairwise(started):
        assert a.end_time is not None and a.end_time <= b.start_time, (
            f"runs overlap: {a.name} {a.start_time}..{a.end_time} and {b.name} from {b.start_time}"
        )


@pytest.mark.integration
@pytest.mark.slow
def test_schedule_onboards_settled_folders_once_and_survives_restarts(tmp_path, tiny_base_dir, monkeypatch):
    from components.world.concepts import write_concepts

    t0, times = time.time(), {}
    root, port = tmp_path / "ws", free_port()
    inbox, api = root / "inbox", f"http://127.0.0.1:{port}/api"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k not in FOREIGN_ENV}
    server_env = base_env | {
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_URL": api,
    }
    serve_env = base_env | {
        "PREFECT_API_URL": api,
        "LFSD_STATE_DIR": str(root / ".lfsd"),
        "LFSD_WORKSPACE": str(root),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PYTHONUNBUFFERED": "1",
    }
    # this process's own client: a home of its own, the test server as its API
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "client-home"))
    monkeypatch.setenv("PREFECT_API_URL", api)
    server_cmd = [
        str(Path(sys.executable).with_name("prefect")),
        "server",
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    serve_cmd = [
        sys.executable,
        "-m",
        "components.cli",
        "schedule",
        "--workspace",
        str(root),
        "--interval",
        str(INTERVAL),
    ]
    services: list[Service] = []

    def launch(name: str, cmd: list[str], env: dict, log: str) -> Service:
        services.append(Service(name, cmd, env, tmp_path / log))
        return services[-1]

    def server_ready(server: Service) -> None:
        wait_http(f"{api}/health", server.proc, 240, server.log)

    def deployment():
        return _prefect(api)[0]

    try:
        server = launch("prefect server", server_cmd, server_env, "prefect-server.log")
        # while the server starts: the workspace, a valid concept and an invalid one (a single shot)
        make_workspace(root, tiny_base_dir, overrides={"pipeline": {"inbox_settle_seconds": 1}, **NO_RAY})
        good = write_concepts(tmp_path / "incoming", n=1, shots=3, seed=5)[0]
        bad = write_concepts(tmp_path / "incoming-bad", n=1, shots=3, seed=6)[0]
        for shot in sorted(bad.glob("*.png"))[1:]:
            shot.unlink()
        server_ready(server)
        times["server up"] = time.time() - t0

        serve = launch("lfsd schedule", serve_cmd, serve_env, "lfsd-schedule.log")
        inbox.mkdir()
        shutil.move(str(good), inbox / good.name)
        shutil.move(str(bad), inbox / "zz-too-few")
        # hostile entries (integrity issue): a link to a valid folder elsewhere, a report file that is a
        # link to a file outside, a name that is not UTF-8
        outside = write_concepts(tmp_path / "outside", n=1, shots=3, seed=8)[0]
        victim = tmp_path / "victim.txt"
        victim.write_text("precious\n")
        (inbox / "linked").symlink_to(outside)
        (inbox / "zz-too-few" / "REJECTED.txt").symlink_to(victim)
        shutil.copy(next((inbox / "zz-too-few").glob("*.png")), os.fsencode(inbox / "zz-too-few") + b"/\xff.png")
        live = [server, serve]
        _assert_scheduled_with_limit_one(_wait("deployment served", deployment, 240, live))
        times["deployment up"] = time.time() - t0

        done, rejected = inbox / ".done" / good.name, inbox / ".rejected" / "zz-too-few"
        report_file = rejected / "REJECTED.txt"
        handled = lambda: done.is_dir() and report_file.is_file() and not report_file.is_symlink()
        _wait("inbox handled", handled, 600, live, every=3)
        times["inbox handled"] = time.time() - t0
        report = report_file.read_text()
        assert "image" in report and "shot" in report and "\\xff.png: file name is not UTF-8" in report, report
        assert victim.read_text() == "precious\n" and (inbox / ".rejected" / "linked").is_symlink()
        assert "symbolic link" in (inbox / ".rejected" / "linked.REJECTED.txt").read_text()
        assert len(list(outside.iterdir())) == 4  # the linked folder was never onboarded nor moved
        assert sorted(p.name for p in inbox.iterdir()) == [".done", ".gitignore", ".rejected"]
        dep, runs = _prefect(api)
        assert any(r.state is not None and r.state.is_completed() for r in runs), [(r.name, r.state) for r in runs]
        _assert_one_run_at_a_time(runs)

        serve.stop(signal.SIGTERM)  # `kill PID` / systemctl stop: stops serving, must not pause the deployment
        times["serve stopped"] = time.time() - t0
        assert serve.proc.returncode == 0, serve.tail()  # it stopped by itself, gracefully
        dep, runs = _prefect(api)
        _assert_scheduled_with_limit_one(dep)
        _assert_one_run_at_a_time(runs)

        server.stop(signal.SIGTERM)
        restarted = time.time()
        server = launch(
            "prefect server", server_cmd, server_env, "prefect-server.log"
        )  # same PREFECT_HOME and database
        # while it starts: the valid folder was onboarded exactly once (one commit, one model version)
        import mlflow

        onboard_commits = [s for s in git(root, "log", "--format=%s").splitlines() if s.startswith("onboard ")]
        assert len(onboard_commits) == 1 and onboard_commits[0].startswith("onboard 01-"), onboard_commits
        uri = f"sqlite:///{root / '.lfsd' / 'mlflow' / 'mlflow.db'}"
        versions = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri).search_model_versions("")
        assert len(versions) == 1, [(v.name, v.version) for v in versions]
        server_ready(server)
        times["server restarted"] = time.time() - t0
        _assert_scheduled_with_limit_one(deployment())

        serve = launch("lfsd schedule", serve_cmd, serve_env, "lfsd-schedule.log")
        live = [server, serve]
        # the new serve process polls for the deployment's runs: the server records when it last did
        dep = _wait(
            "deployment polled by the restarted serve",
            lambda: (
                (d := deployment()) is not None
                and d.last_polled is not None
                and d.last_polled.timestamp() > restarted
                and d
            ),
            240,
            live,
        )
        times["serve restarted"] = time.time() - t0
        _assert_scheduled_with_limit_one(dep)
    finally:
        for service in reversed(services):
            service.stop(signal.SIGTERM, grace=20)
        leftovers = {s.name: _session_pids(s.proc.pid) for s in services}
        times["total"] = time.time() - t0
        print("timings (s since start): " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()))
    assert not any(leftovers.values()), leftovers
