"""lfsd as a service, with real processes: two writers at once, the writer lock's refusal and a lock left
by a SIGKILLed holder, and `lfsd onboard` SIGKILLed (its whole process group) during training, after
its commit and during registration, then run again. Everything is read back from what git committed,
the DVC cache, the MLflow store and the checkpoints; nothing is mocked."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import git

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SLOW_TRAIN = {"training": {"steps": 30, "report_every": 5}, "ray": {"cpus_per_worker": 1, "checkpoint_every": 5}}


_API: list[str] = []  # the session's Prefect server, for every lfsd process started here


@pytest.fixture(autouse=True)
def _prefect(prefect_api):
    _API[:] = [prefect_api]
    yield


def _env(ws: Path, **extra) -> dict:
    from tests.integration.services import cli_env

    return cli_env(ws, _API[0] if _API else None, **extra)


def _start(ws: Path, args: list[str], log: Path, **env) -> subprocess.Popen:
    """`lfsd ARGS --workspace WS` as a real process in its own process group."""
    return subprocess.Popen(
        [sys.executable, "-m", "components.cli", *args, "--workspace", str(ws)],
        cwd=ws,
        env=_env(ws, **env),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _finish(proc: subprocess.Popen, log: Path, timeout: float = 900) -> tuple[int, str]:
    try:
        rc = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return rc, log.read_text()


def _name(folder: Path) -> str:
    return yaml.safe_load((folder / "concept.yaml").read_text())["name"]


def _committed(ws: Path, folder: str) -> list[str]:
    out = git(ws, "ls-tree", "--name-only", "HEAD", f"{folder}/")
    return sorted(Path(p).name.removesuffix(".dvc") for p in out.splitlines() if p.endswith(".dvc"))


def _mlflow(ws: Path, query: str) -> list[tuple]:
    with sqlite3.connect(ws / ".lfsd" / "mlflow" / "mlflow.db") as con:
        return con.execute(query).fetchall()


def _versions(ws: Path) -> dict[str, dict[str, str]]:
    """model version -> its tags."""
    out: dict[str, dict[str, str]] = {}
    for version, key, value in _mlflow(ws, "select version, key, value from model_version_tags"):
        out.setdefault(str(version), {})[key] = value
    for (version,) in _mlflow(ws, "select version from model_versions"):
        out.setdefault(str(version), {})
    return out


def _production(ws: Path) -> str | None:
    rows = _mlflow(ws, "select version from registered_model_aliases where alias = 'production'")
    return str(rows[0][0]) if rows else None


def _dvc_cache_orphans(ws: Path) -> set[str]:
    """Cache objects no committed .dvc file refers to (directly or through its .dir listing)."""
    cache = ws / ".dvc" / "cache" / "files" / "md5"
    present = {p.parent.name + p.name for p in cache.rglob("*") if p.is_file()} if cache.is_dir() else set()
    wanted = set()
    for folder in ("data/concepts", "checkpoints"):
        for stem in _committed(ws, folder):
            md5 = yaml.safe_load(git(ws, "show", f"HEAD:{folder}/{stem}.dvc"))["outs"][0]["md5"]
            wanted.add(md5)
            listing = cache / md5[:2] / md5[2:]
            if listing.is_file():
                wanted |= {e["md5"] for e in json.loads(listing.read_text())}
    return present - wanted


def _assert_whole(ws: Path, names: list[str]) -> None:
    """One checkpoint per task and one version per concept, nothing uncommitted anywhere."""
    assert _committed(ws, "checkpoints") == [f"{k:02d}-{n}" for k, n in enumerate(names, 1)]
    assert _committed(ws, "data/concepts") == sorted(names)
    assert sorted(p.name for p in (ws / "checkpoints").iterdir() if p.is_dir()) == _committed(ws, "checkpoints")
    assert sorted(p.name for p in (ws / "data" / "concepts").iterdir() if p.is_dir()) == sorted(names)
    assert git(ws, "status", "--porcelain", "--untracked-files=all") == ""
    versions = _versions(ws)
    assert sorted(v["lfsd.concept"] for v in versions.values()) == sorted(names), versions
    assert _dvc_cache_orphans(ws) == set()
    assert _mlflow(ws, "select count(*) from runs where status = 'RUNNING'") == [(0,)]


def test_two_writers_at_once_end_in_one_chain(workspace, tmp_path):
    from components.world.concepts import write_concepts

    c1, c2 = write_concepts(tmp_path / "in", n=2, shots=3, seed=11)
    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["ray"]["enabled"] = False  # the lock is the subject here, not Ray (conftest.NO_RAY)
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    git(workspace, "commit", "-qam", "train in-process")
    first = _start(workspace, ["onboard", str(c1)], tmp_path / "a.log")
    time.sleep(3)
    second = _start(workspace, ["onboard", str(c2)], tmp_path / "b.log")
    (rc1, out1), (rc2, out2) = _finish(first, tmp_path / "a.log"), _finish(second, tmp_path / "b.log")
    assert (rc1, rc2) == (0, 0), out1[-3000:] + out2[-3000:]
    waited = out2 if "waiting for it to finish" in out2 else out1
    assert "is being changed by `lfsd onboard" in waited and "pid " in waited  # the second said whom it waited for

    names = [_name(c1), _name(c2)] if "waiting" in out2 else [_name(c2), _name(c1)]
    _assert_whole(workspace, names)
    ledger = json.loads((workspace / "checkpoints" / f"02-{names[1]}" / "ledger.json").read_text())
    assert [e["name"] for e in ledger["entries"]] == names  # task 02 was trained on top of task 01
    versions = _versions(workspace)
    assert _production(workspace) == "2" and versions["2"]["lfsd.ledger"] == ",".join(names)


def test_no_wait_names_the_holder_and_a_killed_holder_never_blocks(workspace, tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from components.workspace.lock import writer_lock\n"
            "with writer_lock(sys.argv[1], 'onboard held-by-test'):\n"
            "    print('held', flush=True); time.sleep(600)",
            str(workspace),
        ],
        env=_env(workspace),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        busy = subprocess.run(  # another state folder (integrity issue, point 5): the lock is the workspace's
            [sys.executable, "-m", "components.cli", "rollback", "--no-wait", "--workspace", str(workspace)],
            env=dict(_env(workspace), LFSD_STATE_DIR=str(tmp_path / "another-state")),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert busy.returncode == 75, busy.stdout + busy.stderr
        assert f"`lfsd onboard held-by-test` (pid {holder.pid} on " in busy.stderr
    finally:
        os.killpg(holder.pid, signal.SIGKILL)  # the holder dies holding the lock
        holder.wait()
    from components.workspace.lock import writer_lock

    t0 = time.time()
    with writer_lock(workspace, "after the kill", wait=False):
        pass
    assert time.time() - t0 < 5


def _ray_checkpoint_reported(ws: Path) -> bool:
    results = ws / ".lfsd" / "ray_results"
    return results.is_dir() and any(p.name.startswith("checkpoint_") for p in results.rglob("checkpoint_*"))


def test_sigkill_at_each_stage_then_the_same_command_completes(tmp_path, tiny_base_dir, monkeypatch):
    """One workspace: a concept killed during training, then the same command; another killed after its
    commit, the same command killed during the registration, then the same command again."""
    from components.world.concepts import write_concepts
    from tests.integration.conftest import make_workspace

    ws = make_workspace(tmp_path / "ws", tiny_base_dir, SLOW_TRAIN)
    monkeypatch.setenv("LFSD_STATE_DIR", str(ws / ".lfsd"))
    a, b = write_concepts(tmp_path / "in", n=2, shots=3, seed=13)

    # 1. during training: killed once Ray Train has stored a resumable checkpoint
    proc = _start(ws, ["onboard", str(a)], tmp_path / "a1.log")
    deadline = time.time() + 300
    while not _ray_checkpoint_reported(ws) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, (
        "the run ended before it could be killed during training:\n" + (tmp_path / "a1.log").read_text()[-3000:]
    )
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _committed(ws, "checkpoints") == []
    rc, out = _finish(_start(ws, ["onboard", str(a)], tmp_path / "a2.log"), tmp_path / "a2.log")
    assert rc == 0, out[-4000:]
    assert "resumed after step " in out, out[-4000:]
    resumed_after = int(out.split("resumed after step ")[1].split()[0])
    assert 0 < resumed_after < SLOW_TRAIN["training"]["steps"]
    _assert_whole(ws, [_name(a)])
    _matches_an_uninterrupted_run(ws, a, tiny_base_dir)

    # 2. after the commit, before registration: the rerun registers what was committed, never retrains ...
    rc, out = _finish(
        _start(ws, ["onboard", str(b)], tmp_path / "b1.log", LFSD_DIE_AT="after-commit"), tmp_path / "b1.log"
    )
    assert rc == -signal.SIGKILL
    assert _committed(ws, "checkpoints")[-1] == f"02-{_name(b)}" and len(_versions(ws)) == 1
    # 3. ... and that rerun killed in turn during the registration (MLflow run open, artifacts half logged)
    rc, out = _finish(
        _start(ws, ["onboard", str(b)], tmp_path / "b2.log", LFSD_DIE_AT="during-register"), tmp_path / "b2.log"
    )
    assert rc == -signal.SIGKILL and "trained " not in out, out[-4000:]
    assert _mlflow(ws, "select count(*) from runs where status = 'RUNNING'") == [(1,)] and len(_versions(ws)) == 1
    # the same command once more: the killed run ended as KILLED, the concept registered once, nothing retrained
    rc, out = _finish(_start(ws, ["onboard", str(b)], tmp_path / "b3.log"), tmp_path / "b3.log")
    assert rc == 0, out[-4000:]
    assert "was committed by a killed run and is now registered" in out and "trained " not in out, out[-4000:]
    assert _mlflow(ws, "select count(*) from runs where status = 'KILLED'") == [(1,)]
    _assert_whole(ws, [_name(a), _name(b)])
    assert _production(ws) == "2"


def test_a_sequence_killed_during_its_second_task_resumes_it_on_one_worker_group(tmp_path, tiny_base_dir, monkeypatch):
    """`lfsd sequence` trains every task on one warm worker group (ray.keep_workers). SIGKILLed during the
    second task, after the group reported that task's resumable checkpoint: the same command again skips
    the committed first concept and resumes the second from the warm fit's stored checkpoint."""
    from components.world.concepts import write_concepts
    from tests.integration.conftest import make_workspace

    ws = make_workspace(tmp_path / "ws", tiny_base_dir, SLOW_TRAIN)
    monkeypatch.setenv("LFSD_STATE_DIR", str(ws / ".lfsd"))
    a, b = write_concepts(tmp_path / "in", n=2, shots=3, seed=17)
    proc = _start(ws, ["sequence", str(a), str(b)], tmp_path / "s1.log")
    deadline = time.time() + 600
    while not _warm_checkpoint_of(ws, "02-") and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, (
        "the sequence ended before its second task could be killed:\n" + (tmp_path / "s1.log").read_text()[-3000:]
    )
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _committed(ws, "checkpoints") == [f"01-{_name(a)}"]
    rc, out = _finish(_start(ws, ["sequence", str(a), str(b)], tmp_path / "s2.log"), tmp_path / "s2.log")
    assert rc == 0, out[-4000:]
    assert "already onboarded" in out and "resumed after step " in out, out[-4000:]
    assert 0 < int(out.split("resumed after step ")[1].split()[0]) < SLOW_TRAIN["training"]["steps"]
    _assert_whole(ws, [_name(a), _name(b)])
    assert not (ws / ".lfsd" / "ray_results" / "warm-sequence").exists()  # dropped when the sequence ended


def _warm_checkpoint_of(ws: Path, task_prefix: str) -> bool:
    """The warm fit stored a resumable checkpoint of the task whose attempt name starts with `task_prefix`."""
    run = ws / ".lfsd" / "ray_results" / "warm-sequence"
    try:
        return any(p.read_text().startswith(task_prefix) for p in run.glob("checkpoint_*/request.txt"))
    except OSError:  # a checkpoint folder being replaced
        return False


def _matches_an_uninterrupted_run(ws: Path, concept: Path, base: Path) -> None:
    """The resumed task's weights equal (to float noise) those of the same task trained without a break."""
    import dataclasses

    import torch
    from safetensors.torch import load_file

    from components.config import load_params
    from components.training.launch import TrainRequest, run_request

    params = load_params(ws / "params.yaml")
    name = _name(concept)
    req = TrainRequest(
        base_dir=ws / "models" / "base",
        previous_checkpoint=None,
        concept_dir=ws / "data" / "concepts" / name,
        references=str(ws / "data" / "concepts" / name),
        out=ws.parent / "uninterrupted",
        method=params.training.method,
        cfg=dataclasses.replace(params.training),
    )
    torch.set_num_threads(1)
    run_request(req)
    resumed = load_file(ws / "checkpoints" / f"01-{name}" / "unet_lora" / "pytorch_lora_weights.safetensors")
    straight = load_file(ws.parent / "uninterrupted" / "unet_lora" / "pytorch_lora_weights.safetensors")
    assert resumed.keys() == straight.keys()
    worst = max(float((resumed[k] - straight[k]).abs().max()) for k in resumed)
    assert worst < 1e-4, worst
