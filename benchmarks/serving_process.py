"""`lfsd serve` as the serving benchmark runs it: its own process group on a free port, its replica's memory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


class Served:
    """`lfsd serve` on the workspace, in its own process group, until `stop()`."""

    def __init__(self, root: Path, port: int, max_batch_size: int, log_path: Path):
        cmd = [str(Path(sys.executable).with_name("lfsd")), "serve", "--workspace", str(root), "--port", str(port)]
        cmd += ["--max-batch-size", str(max_batch_size)]
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            cmd, stdout=log_path.open("w"), stderr=subprocess.STDOUT, start_new_session=True, env=cli_env(root)
        )
        self._wait_ready(600)
        self.ready_s = round(time.perf_counter() - t0, 2)

    def _wait_ready(self, timeout: float) -> None:
        """Until GET /health answers 200 (a version is loaded); the server's log if it dies or never does."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"lfsd serve not ready (exit {self.proc.poll()}):\n{self.log_path.read_text()[-3000:]}")

    def replica(self):
        """The Ray Serve replica process (a descendant of this `lfsd serve`)."""
        import psutil

        found = [p for p in psutil.Process(self.proc.pid).children(recursive=True) if "ServeReplica" in p.name()]
        assert len(found) == 1, [p.name() for p in found]
        return found[0]

    def replica_rss(self) -> int:
        """Resident bytes of the replica."""
        return self.replica().memory_info().rss

    def replica_rss_parts(self) -> dict[str, float]:
        """The replica's resident MiB by kind (/proc/PID/status): anonymous (heap, tensors: what a leak grows)
        and file-backed (pages of mapped libraries and files, touched as new code paths run)."""
        lines = Path(f"/proc/{self.replica().pid}/status").read_text().splitlines()
        kb = {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in lines) if k.startswith("Rss")}
        return {"anon": round(kb["RssAnon"] / 1024, 1), "file": round(kb["RssFile"] / 1024, 1)}

    def stop(self) -> None:
        """SIGTERM to the process group (`lfsd serve` stops Ray Serve and Ray), SIGKILL after 30 s."""
        import signal

        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_env(root: Path) -> dict:
    """An `lfsd` process's environment on the workspace `root`: no endpoint of this process leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAY_ADDRESS", "PREFECT_API"))}
    return env | {"LFSD_STATE_DIR": str(root / ".lfsd"), "HF_HUB_OFFLINE": "1", "GX_ANALYTICS_ENABLED": "false"}
