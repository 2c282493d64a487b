"""What a user sees on a terminal: one `lfsd onboard` on a pseudo-terminal (real Prefect, Ray Train, DVC,
MLflow) shows lfsd's own lines, a line as each stage starts, and none of the libraries' noise (which the
full log keeps); `lfsd evaluate --json` is strict JSON; `lfsd ui` stopped by SIGTERM leaves no server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.terminal import Terminal

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NOISE = (  # (what, as it appears) -- each seen on a user's terminal before issue 35
    ("Prefect's temporary-server banner", "Starting temporary server"),
    ("Prefect's docs link", "prefect.io/docs"),
    ("Prefect's task bookkeeping", "Finished in state"),
    ("Ray's token warning", "Token authentication is enabled"),
    ("diffusers' float32 advice", "kept in float32"),
    ("tqdm bars", "it/s]"),
    ("MLflow's prints", "Successfully registered model"),
    ("MLflow's CloudPickle warning", "CloudPickle"),
    ("Prefect's telemetry notice", "anonymous usage data"),
    ("a traceback", "Traceback"),
)
STAGES = ("validate concept ...", "version dataset (DVC) ...", "train (Ray Train) ...", "evaluate forgetting ...")
STAGES += ("version checkpoint (DVC + git) ...", "register in MLflow ...", "promotion gate ...")


def _strict_json(text: str):
    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_an_onboarding_shows_lfsd_lines_only_and_evaluate_json_is_strict(workspace, tmp_path, prefect_api):
    from components.world.concepts import write_concepts
    from tests.integration.services import cli_env

    (concept,) = write_concepts(tmp_path / "in", n=1, shots=3, seed=23)
    env = cli_env(workspace, prefect_api, TERM="xterm")
    term = Terminal([sys.executable, "-m", "components.cli", "onboard", str(concept)], workspace, env)
    rc = term.finish(timeout=600)
    screen = term.screen
    assert rc == 0, screen[-4000:]
    for what, text in NOISE:
        assert text not in screen, f"{what} on the terminal:\n{screen}"
    for stage in STAGES:
        assert stage in screen, f"no {stage!r}:\n{screen}"
    assert "trained 01-" in screen and "forgetting: " in screen and "model version 1" in screen, screen
    log = (workspace / ".lfsd" / "logs" / "lfsd.log").read_text()
    assert "Finished in state" in log  # what the terminal leaves out is in the full log

    out = subprocess.run(
        [sys.executable, "-m", "components.cli", "evaluate", "--json"],
        cwd=workspace,
        env=cli_env(workspace),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = _strict_json(out.stdout)  # one concept so far: bwt and the like are not defined yet (NaN -> null)
    assert isinstance(metrics["final_fidelity"], float) and "avg_forgetting" in metrics["step"], metrics


def _listening(port: int) -> bool:
    """Whether anything on this machine listens on `port` (IPv4 or IPv6), from /proc/net."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                return True
    return False


def test_ui_stopped_by_sigterm_leaves_no_listening_port(workspace, tmp_path):
    from tests.integration.services import cli_env, free_port

    port = free_port()
    ui = subprocess.Popen(
        [sys.executable, "-m", "components.cli", "ui", "--port", str(port)],
        cwd=workspace,
        env=cli_env(workspace),
        stdout=(tmp_path / "ui.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 180
        while not _listening(port):
            assert ui.poll() is None and time.time() < deadline, (tmp_path / "ui.log").read_text()[-3000:]
            time.sleep(0.5)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        os.kill(ui.pid, signal.SIGTERM)  # the command only, as `kill PID` or systemd would
        assert ui.wait(timeout=60) == 128 + signal.SIGTERM
        deadline = time.time() + 20
        while _listening(port) and time.time() < deadline:
            time.sleep(0.5)
        assert not _listening(port), f"port {port} still served after SIGTERM to lfsd ui"
    finally:
        if ui.poll() is None:
            os.killpg(ui.pid, signal.SIGKILL)
            ui.wait()
