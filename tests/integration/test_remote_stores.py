"""lfsd against remote stores, all real servers on 127.0.0.1 (tests/integration/remote_services.py):
MLflow with its backend store in PostgreSQL and its artifacts in S3 (moto), and a DVC remote on the same
S3 server.

One concept is onboarded through the real command line (`python -m components.cli onboard`) in a
throw-away workspace pointed at the MLflow server by MLFLOW_TRACKING_URI only. Then:
1. the run, the model version and the `production` alias are rows in PostgreSQL, and the model's files
   are objects in the S3 bucket;
2. a fresh interpreter that knows only the tracking URI and the S3 endpoint and credentials (no
   workspace, cwd elsewhere) loads `models:/lfs-diffusion@production` and draws one image;
3. the workspace's data/ and checkpoints/ go to a DVC remote `s3://<bucket>/dvc` and come back byte
   for byte after data, checkpoints, the DVC cache and the local remote are deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import NO_RAY, git, make_workspace
from tests.integration.remote_services import ServiceUnavailable, check_postgres_runnable, remote_stores

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUCKET = "lfsd-remote"
MODEL = "lfs-diffusion"  # params.yaml pipeline.model_name, the name README.md serves
VENV_BIN = Path(sys.executable).parent
# Dropped from the inherited environment of every subprocess, so that only the servers started here (and
# the workspace made here) can be reached: a developer's or CI's own MLflow, Prefect, Ray, S3 or workspace.
_DROP_PREFIXES = ("MLFLOW_", "AWS_", "LFSD_", "PREFECT_API", "RAY_ADDRESS", "RAY_AUTH_", "DVC_")


def _inherited_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(_DROP_PREFIXES)}


def _tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    try:
        check_postgres_runnable()
    except ServiceUnavailable as e:
        pytest.skip(str(e))
    with remote_stores(tmp_path_factory.mktemp("servers"), bucket=BUCKET) as ml:
        yield ml


@pytest.fixture(scope="module")
def onboarded(stores, tiny_base_dir, tmp_path_factory, prefect_api):
    """A workspace (tiny base, fast params) with two concepts onboarded through the CLI against `stores`
    (version 2 shares the base and task 1 with version 1: registry/shared_artifacts.py).
    Yields (workspace root, the CLI's output, the environment it ran with)."""
    tmp = tmp_path_factory.mktemp("remote")
    root = tmp / "ws"
    env = _inherited_env() | {
        "LFSD_WORKSPACE": str(root),
        "LFSD_STATE_DIR": str(root / ".lfsd"),
        "HF_HUB_OFFLINE": "1",
        "GX_ANALYTICS_ENABLED": "false",
        "PREFECT_API_URL": prefect_api,
        **stores.client_env,
    }
    with pytest.MonkeyPatch.context() as mp:  # init_workspace reads LFSD_STATE_DIR (the Makefile exports it)
        mp.setenv("LFSD_STATE_DIR", env["LFSD_STATE_DIR"])
        mp.setenv("LFSD_WORKSPACE", env["LFSD_WORKSPACE"])
        make_workspace(root, tiny_base_dir, NO_RAY)
    from components.world.concepts import write_concepts

    out = ""
    for concept in write_concepts(tmp / "concepts", n=2, shots=3, seed=5):
        proc = subprocess.run(
            [sys.executable, "-m", "components.cli", "onboard", str(concept), "--workspace", str(root)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        (tmp / f"onboard-{concept.name}.log").write_text(f"{proc.stdout}\n--- stderr ---\n{proc.stderr}")
        assert proc.returncode == 0, f"onboard exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        out += proc.stdout
    yield root, out, env


def test_onboard_via_cli_lands_in_postgres_and_s3(stores, onboarded):
    import mlflow

    root, out, _ = onboarded
    name = MODEL
    assert "model version 2" in out and "production = 2" in out, out
    # Nothing fell back to the workspace's own sqlite store.
    assert not (root / ".lfsd" / "mlflow" / "mlflow.db").exists()

    # PostgreSQL holds the run, the version and the alias (MLflow's own schema, read directly).
    with stores.postgres.connect() as con, con.cursor() as cur:
        cur.execute("SELECT version, run_id, status FROM model_versions WHERE name = %s", (name,))
        versions = cur.fetchall()
        cur.execute("SELECT alias, version FROM registered_model_aliases WHERE name = %s", (name,))
        aliases = dict(cur.fetchall())
        cur.execute("SELECT run_uuid, status, name FROM runs")
        runs = {r[0]: (r[1], r[2]) for r in cur.fetchall()}
        cur.execute("SELECT key, value FROM model_version_tags WHERE name = %s AND version = 2", (name,))
        version_tags = dict(cur.fetchall())
    assert sorted((v, s) for v, _, s in versions) == [(1, "READY"), (2, "READY")]
    assert all(runs[run_id][0] == "FINISHED" for _, run_id, _ in versions)
    assert aliases.get("production") == 2
    for tag in ("lfsd.dataset_dvc_md5", "lfsd.checkpoint_dvc_md5", "lfsd.git_commit"):
        assert version_tags.get(tag), f"model version 2 has no {tag} tag in PostgreSQL"
    assert version_tags["lfsd.git_commit"] == git(root, "rev-parse", "HEAD")

    # S3 holds the model's files, under the server's --artifacts-destination.
    client = mlflow.MlflowClient(tracking_uri=stores.uri, registry_uri=stores.uri)
    stored = {}
    for version in ("1", "2"):
        location = client.get_model_version_download_uri(name, version)
        assert location.startswith("mlflow-artifacts:/"), location  # uploaded through the server's proxy
        prefix = (
            stores.artifacts.removeprefix(f"s3://{BUCKET}/")
            + "/"
            + location.removeprefix("mlflow-artifacts:/").strip("/")
        )
        stored[version] = keys = stores.s3.keys(prefix + "/")
        names = {k.rsplit("/", 1)[-1] for k in keys}
        assert {"MLmodel", "python_model.pkl", "index.json"} <= names, keys[:20]
        assert any(k.endswith(".safetensors") for k in keys), keys[:20]  # the weights, not just metadata
    # Version 2 stores its own task only: the base and task 1 are version 1's (its index points there).
    assert any("/artifacts/base/" in k for k in stored["1"]) and not any("/artifacts/base/" in k for k in stored["2"])
    assert len(stored["2"]) < len(stored["1"])


FRESH = r"""
import json, sys
import mlflow, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
out = model.predict(pd.DataFrame({"prompt": ["a circle on a white background"], "seed": [0], "steps": [2]}))
print("RESULT" + json.dumps({"n": len(out), "images": out["image"].tolist(), "seeds": out["seed"].tolist(),
                             "concepts": model.unwrap_python_model().concepts()}))
"""


def test_fresh_process_loads_production_from_remote_stores(stores, onboarded, tmp_path):
    from components.registry import decode_png

    home = tmp_path / "home"
    home.mkdir()
    # Only the tracking URI and the S3 endpoint and credentials (HOME: a fresh folder, so no user config).
    env = {**stores.client_env, "HOME": str(home)}
    proc = subprocess.run(
        [sys.executable, "-c", FRESH, f"models:/{MODEL}@production"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert result["n"] == 1 and result["seeds"] == [0]
    assert len(result["concepts"]) == 2  # version 2, its shared base and task 1 fetched through the server
    (image,) = result["images"]
    png = decode_png(image)
    assert png.format == "PNG" and png.size == (32, 32)


def _dvc(root: Path, env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        [str(VENV_BIN / "dvc"), *args], cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, f"dvc {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout.strip()


def _git_blob(root: Path, path: str) -> bytes:
    return subprocess.run(["git", "show", f"HEAD:{path}"], cwd=root, check=True, capture_output=True).stdout


def test_dvc_remote_on_s3_push_pull_is_byte_identical(stores, onboarded):
    root, _, client_env = onboarded
    env = _inherited_env() | {
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(root / ".lfsd" / "dvc-site-cache"),
    }  # S3 credentials come from DVC's config
    url = f"s3://{BUCKET}/dvc"
    _dvc(root, env, "remote", "add", "-d", "s3remote", url)
    _dvc(root, env, "remote", "modify", "s3remote", "endpointurl", stores.s3.endpoint)
    _dvc(root, env, "remote", "modify", "--local", "s3remote", "access_key_id", client_env["AWS_ACCESS_KEY_ID"])
    _dvc(root, env, "remote", "modify", "--local", "s3remote", "secret_access_key", client_env["AWS_SECRET_ACCESS_KEY"])
    # As infra/dvc/set-remote.sh does: drop the git-ignored local default so the committed one applies.
    _dvc(root, env, "remote", "remove", "--local", "local")
    assert _dvc(root, env, "remote", "default") == "s3remote"

    before = {d: _tree(root / d) for d in ("data", "checkpoints")}
    assert any(p.endswith(".png") for p in before["data"]) and any(
        p.endswith(".safetensors") for p in before["checkpoints"]
    ), before
    _dvc(root, env, "push")
    assert stores.s3.keys("dvc/files/md5/"), "dvc push wrote nothing to S3"

    # Delete the data, the checkpoints, the DVC cache and the old local remote; put back only what git
    # holds (the .dvc files and .gitignore entries), as a fresh clone would have it.
    tracked = git(root, "ls-files", "data", "checkpoints").splitlines()
    pointers = {p: _git_blob(root, p) for p in tracked}
    for d in ("data", "checkpoints", ".dvc/cache", ".lfsd/dvc-remote"):
        shutil.rmtree(root / d, ignore_errors=True)
    for p, blob in pointers.items():
        (root / p).parent.mkdir(parents=True, exist_ok=True)
        (root / p).write_bytes(blob)
    assert not any(p.endswith(".png") for p in _tree(root / "data"))

    _dvc(root, env, "pull")
    after = {d: _tree(root / d) for d in ("data", "checkpoints")}
    assert after == before
    assert git(root, "status", "--porcelain", "--", "data", "checkpoints") == ""
