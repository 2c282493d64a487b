"""Crash recovery in one process (the chain with plain steps and in-process training, a real git + DVC
workspace and sqlite MLflow): leftovers of an attempt that never committed are discarded, a committed
but unregistered concept is registered without retraining, and the chain is read from git's HEAD,
never from folders lying in the working tree. The same cases with real SIGKILLed processes are in
test_writers.py."""

from __future__ import annotations

import shutil

import pytest

from tests.integration.conftest import git

pytestmark = pytest.mark.integration


class Boom(RuntimeError):
    pass


def _runner(fail_at: str | None):
    def run_step(name, fn, *args, **kwargs):
        if name == fail_at:
            raise Boom(f"injected failure at {name}")
        return fn(*args, **kwargs)

    return run_step


def test_recovery_discards_leftovers_and_registers_what_was_committed(workspace, tmp_path):
    import mlflow

    from components.chains.onboard import onboard
    from components.training.launch import in_process
    from components.workspace.layout import load_workspace
    from components.world.concepts import write_concepts

    a, b = write_concepts(tmp_path / "in", n=2, shots=3, seed=21)
    ws = load_workspace(workspace)
    launcher = in_process(1)
    quiet = lambda m: None

    # Killed after its commit, before registration (here: the register step fails).
    with pytest.raises(Boom):
        onboard(ws, a, launcher=launcher, run_step=_runner("register"), log=quiet)
    chain = ws.checkpoints()
    assert [p.name for p in chain] == [f"01-{ws.learned_names()[0]}"]
    head = git(workspace, "rev-parse", "HEAD")

    # A stray folder that looks like a checkpoint but was never committed is not part of the chain.
    stray = ws.checkpoint_dir / "02-ghost"
    shutil.copytree(chain[0], stray)
    (ws.data_dir / "ghost").mkdir()
    (ws.checkpoint_dir / "02-ghost.dvc").write_text("outs:\n- md5: 0\n  path: 02-ghost\n")
    assert [p.name for p in ws.checkpoints()] == [chain[0].name]

    # The next write finishes the committed concept first (no training), removes the strays, then
    # onboards its own concept on top.
    messages: list[str] = []
    result = onboard(ws, b, launcher=launcher, log=messages.append)
    assert result.status == "onboarded" and result.checkpoint.endswith(f"02-{result.concept}")
    assert any("committed but not registered" in m for m in messages)
    assert any("discarded an unfinished attempt" in m and "02-ghost" in m for m in messages)
    assert not stray.exists() and not (ws.data_dir / "ghost").exists()
    assert git(workspace, "log", "--format=%s", f"{head}..HEAD").count("onboard ") == 1  # only b was committed now
    assert git(workspace, "status", "--porcelain", "--untracked-files=all") == ""
    client = mlflow.MlflowClient()
    versions = client.search_model_versions(f"name='{ws.params.pipeline.model_name}'")
    assert sorted(v.tags["lfsd.concept"] for v in versions) == sorted(ws.learned_names())
    assert {v.tags["lfsd.checkpoint_path"] for v in versions} == {ws.rel(p) for p in ws.checkpoints()}
