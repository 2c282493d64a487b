"""A service lfsd depends on is down or refuses: `lfsd onboard` (a real process) exits non-zero with one
clear line naming the service and what to do, production is untouched and the workspace unchanged."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import state_snapshot
from tests.integration.services import free_port
from tests.integration.test_writers import _env, _prefect  # noqa: F401 (_prefect: the session's Prefect server)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _onboard(ws, concept, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "components.cli", "onboard", str(concept), "--workspace", str(ws)],
        cwd=ws,
        env=_env(ws, **env),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture
def concept(tmp_path):
    from components.world.concepts import write_concepts

    return write_concepts(tmp_path / "in", n=1, shots=3, seed=17)[0]


def _ends_with_one_clear_message(proc, start: str) -> Path:
    """No traceback on the terminal; the message and where the full log is (tracebacks included)."""
    lines = proc.stderr.splitlines()
    at = max((i for i, line in enumerate(lines) if line.startswith(start)), default=None)
    assert at is not None and "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
    log = next(line.split("full log: ", 1)[1] for line in lines[at:] if "full log: " in line)
    return Path(log.strip())


def test_a_dvc_remote_that_refuses_writes(workspace, concept):
    subprocess.run(
        [sys.executable, "-m", "dvc", "remote", "add", "--local", "-f", "-d", "local", "/proc/lfsd-refuses-writes"],
        cwd=workspace,
        check=True,
        capture_output=True,
    )
    before = state_snapshot(workspace)
    proc = _onboard(workspace, concept)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "the DVC remote refused 'dvc push'" in proc.stderr and "run the same command again" in proc.stderr
    log = _ends_with_one_clear_message(proc, "error: the DVC remote refused")
    assert "Traceback" in log.read_text() and "dvc push" in log.read_text()
    after = state_snapshot(workspace)
    # git, data/, checkpoints/ and the remote as they were; the local cache may keep the dataset's
    # objects (content-addressed: the rerun's `dvc add` finds them); no model version.
    same = ("head", "status", "data", "checkpoints", "dvc_remote")
    assert {k: after[k] for k in same} == {k: before[k] for k in same}
    assert set(after["dvc_cache"]) >= set(before["dvc_cache"])
    assert after["mlflow"] in (None, before["mlflow"]) or after["mlflow"][1] == 0


def test_an_mlflow_server_that_is_down(workspace, concept):
    before = state_snapshot(workspace)
    proc = _onboard(
        workspace,
        concept,
        MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}",
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
        MLFLOW_HTTP_REQUEST_TIMEOUT="5",
    )
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "the MLflow tracking server (http://127.0.0.1:" in proc.stderr and "is unreachable" in proc.stderr
    _ends_with_one_clear_message(proc, "error: the MLflow tracking server")
    assert state_snapshot(workspace) == before


def test_a_prefect_api_that_is_down(workspace, concept):
    before = state_snapshot(workspace)
    proc = _onboard(
        workspace, concept, PREFECT_API_URL=f"http://127.0.0.1:{free_port()}/api", PREFECT_CLIENT_MAX_RETRIES="0"
    )
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "the Prefect API (http://127.0.0.1:" in proc.stderr and "is unreachable" in proc.stderr
    _ends_with_one_clear_message(proc, "error: the Prefect API")
    assert state_snapshot(workspace) == before
