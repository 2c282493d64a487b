"""The workspace finds itself, like git: `lfsd init DIR` makes one; inside it (any subfolder) commands
use it; outside one they say how to make one. Real `lfsd` processes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.integration.conftest import git

pytestmark = pytest.mark.integration


def _lfsd(*args, cwd) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "HF_HUB_OFFLINE": "1", "GX_ANALYTICS_ENABLED": "false"}
    return subprocess.run(
        [sys.executable, "-m", "components.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_init_then_commands_find_the_workspace_from_inside_and_refuse_outside(tmp_path):
    made = _lfsd("init", "my-model", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    ws = tmp_path / "my-model"
    assert (ws / ".git").is_dir() and (ws / ".dvc").is_dir() and (ws / "models" / "base" / "unet").is_dir()
    assert git(ws, "status", "--porcelain") == "" and git(ws, "log", "--format=%s") == "lfsd workspace"
    assert (ws / "params.yaml").read_text().startswith("# This workspace's values")

    (ws / "inbox" / "deep").mkdir(parents=True)
    inside = _lfsd("evaluate", cwd=ws / "inbox" / "deep")
    assert inside.returncode == 1 and f"{ws / 'checkpoints'}: no checkpoint yet" in inside.stderr, inside.stderr

    outside = _lfsd("evaluate", cwd=tmp_path)
    assert (
        outside.returncode == 1
        and "not inside an lfsd workspace" in outside.stderr
        and "lfsd init DIR" in outside.stderr
    )

    again = _lfsd("init", "my-model", cwd=tmp_path)
    assert again.returncode == 1 and "already exists" in again.stderr
