"""Fixtures for pipeline tests: a throw-away workspace (a real git + DVC repository with a tiny base,
the real evaluator and a fast params.yaml), one real Prefect server per session, and a snapshot of
every piece of state the pipeline may touch."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

FAST = {  # params.yaml overrides: seconds per concept instead of minutes
    "training": {
        "steps": 4,
        "batch_size": 2,
        "kd_batch_size": 2,
        "kd_trajectories": 2,
        "kd_teacher_steps": 2,
        "kd_refresh_every": 2,
        "report_every": 2,
    },
    "forgetting": {"images_per_prompt": 1, "rcf_seeds": 2, "steps": 3},
    "sampling": {"steps": 3},
    "ray": {"cpus_per_worker": 1, "checkpoint_every": 2},
    "gate": {
        "max_avg_forgetting": 1.0,
        "min_rcf_similarity": -1.0,
        "min_new_concept_fidelity": -1.0,
        "max_confusion": 1.0,
    },
}
# For tests of what is not about Ray (the writer lock, the schedule, remote stores): training in the
# onboarding process saves ~30 s of Ray start-up per onboarding. Ray Train itself is exercised by
# test_pipeline, test_ray_job, test_ray_cluster, test_writers' SIGKILL test and test_sd_base.
NO_RAY = {"ray": {**FAST["ray"], "enabled": False}}


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


_TEMPLATES: dict[str, Path] = {}  # (base, params) -> a workspace built once per session


def make_workspace(root: Path, base: Path, overrides: dict | None = None) -> Path:
    """A new workspace at `root`: `init_workspace` with the tiny base and the FAST params (+ `overrides`),
    built once per session and copied (git, DVC's config and the params are all relative to the folder,
    so each copy is a workspace of its own: ~3 s of git/DVC set-up saved per test)."""
    import atexit
    import json
    import os
    import shutil
    import tempfile

    from components.workspace.layout import init_workspace

    params = {**FAST, **(overrides or {})}
    key = json.dumps([str(base), params], sort_keys=True)
    if key not in _TEMPLATES:
        holder = Path(tempfile.mkdtemp(prefix="lfsd-ws-template-"))
        atexit.register(shutil.rmtree, holder, ignore_errors=True)
        saved = os.environ.get("LFSD_STATE_DIR")
        os.environ["LFSD_STATE_DIR"] = str(holder / "ws" / ".lfsd")  # the DVC remote inside, relative
        try:
            _TEMPLATES[key] = init_workspace(holder / "ws", params_overrides=params, base_dir=base)
        finally:
            if saved is None:
                os.environ.pop("LFSD_STATE_DIR", None)
            else:
                os.environ["LFSD_STATE_DIR"] = saved
    shutil.copytree(_TEMPLATES[key], root, symlinks=True)
    return Path(root)


@pytest.fixture(scope="session")
def prefect_harness(prefect_api):
    """The flows this process runs talk to the session's real Prefect server (`prefect_api`), the one the
    `lfsd` processes of other tests use: one server start per session instead of two."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    import flows  # noqa: F401 (sets PREFECT_HOME etc. before prefect is imported)

    with temporary_settings({PREFECT_API_URL: prefect_api}):
        yield


@pytest.fixture
def workspace(tmp_path, tiny_base_dir, monkeypatch) -> Path:
    root = tmp_path / "ws"
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "RAY_ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LFSD_STATE_DIR", str(root / ".lfsd"))
    monkeypatch.setenv("LFSD_WORKSPACE", str(root))
    make_workspace(root, tiny_base_dir)
    yield root
    import mlflow

    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def _tree(root: Path) -> dict[str, str]:
    if not root.exists():
        return {}
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def state_snapshot(root: Path) -> dict:
    """git (HEAD, status), DVC (the .dvc files, the cache and the remote), MLflow (runs and model
    versions in the sqlite store), the ledger and checkpoints, and data/."""
    import sqlite3

    db = root / ".lfsd" / "mlflow" / "mlflow.db"
    mlflow_rows = None
    if db.exists():
        with sqlite3.connect(db) as con:
            mlflow_rows = [con.execute(f"select count(*) from {t}").fetchone()[0] for t in ("runs", "model_versions")]
    return {
        "head": git(root, "rev-parse", "HEAD"),
        "status": git(root, "status", "--porcelain", "--untracked-files=all"),
        "data": _tree(root / "data"),
        "checkpoints": _tree(root / "checkpoints"),
        "dvc_cache": _tree(root / ".dvc" / "cache"),
        "dvc_remote": _tree(root / ".lfsd" / "dvc-remote"),
        "mlflow": mlflow_rows,
    }


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory):
    """One real Prefect server for the `lfsd` processes the tests start (see services.prefect_server)."""
    from tests.integration.services import prefect_server

    with prefect_server(tmp_path_factory.mktemp("prefect")) as api:
        yield api
