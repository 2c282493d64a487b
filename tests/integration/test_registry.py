"""The registry against real MLflow (no mocks): a tiny two-concept 'lfs' chain is logged as a pyfunc,
registered, promoted and rolled back through aliases, loaded in a fresh process, and served over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.integration.services import free_port, mlflow_cli, mlflow_server, stop, wait_http

REPO = Path(__file__).resolve().parents[2]
NAME = "lfsd-test"
LINEAGE = {"lfsd.dataset_dvc_md5": "d" * 32, "lfsd.checkpoint_dvc_md5": "c" * 32, "lfsd.git_commit": "0" * 40}
STEPS = 2


@pytest.fixture(scope="module")
def chain(tiny_base_dir, tiny_training_config, tmp_path_factory):
    """Two concepts learned with 'lfs' (ICGen + KD), 3 steps each: (base dir, last checkpoint, concepts)."""
    from components.training.concept import read_concept
    from components.training.in_process_sequence import run_sequence
    from components.world.concepts import write_concepts

    root = tmp_path_factory.mktemp("chain")
    dirs = write_concepts(root / "concepts", n=2, shots=3, seed=5)
    result = run_sequence(tiny_base_dir, dirs, "lfs", tiny_training_config, None, root / "ckpt", log=lambda s: None)
    return tiny_base_dir, result.tasks[-1].checkpoint, [read_concept(d) for d in dirs]


@pytest.fixture
def mlflow_uris(monkeypatch):
    """Start without tracking/registry URIs and leave mlflow's globals and the environment as they
    were (mlflow.set_tracking_uri/set_registry_uri also export MLFLOW_TRACKING_URI/MLFLOW_REGISTRY_URI)."""
    import mlflow

    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "LFSD_STATE_DIR"):
        monkeypatch.delenv(var, raising=False)
    yield
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def _png(text: str):
    from components.registry import decode_png

    image = decode_png(text)
    assert image.format == "PNG"
    return image


def _expected(checkpoint: Path, base: Path, prompt: str, seed: int, references_dir: Path | None) -> np.ndarray:
    """The same image drawn directly with the training-side model (no MLflow)."""
    from components.config import load_params
    from components.lifelong import LifelongModel
    from components.model.pixels import to_uint8
    from components.model.references import load_reference_folder
    from components.model.sampling import generate

    model = LifelongModel.from_checkpoint(checkpoint, base)
    refs = None
    if references_dir is not None:
        refs = load_reference_folder(references_dir, model.bundle.image_size, 3)[None]
    return to_uint8(
        generate(
            model.bundle,
            [prompt],
            [seed],
            references=refs,
            steps=STEPS,
            guidance_scale=load_params().sampling.guidance_scale,
        )
    )[0]


FRESH = r"""
import json, sys
import mlflow, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
inner = model.unwrap_python_model()
paths = [e.checkpoint for e in inner.model.ledger.entries] + [e.references for e in inner.model.ledger.entries]
df = pd.DataFrame({"prompt": [sys.argv[2], sys.argv[2]], "concept": [sys.argv[3], None],
                   "seed": [0, 0], "steps": [int(sys.argv[4])] * 2})
out = model.predict(df)
print("RESULT" + json.dumps({"images": out["image"].tolist(), "seeds": out["seed"].tolist(),
                             "paths": paths, "concepts": inner.concepts()}))
"""


def test_log_register_promote_load_fresh_and_rollback(chain, tmp_path, mlflow_uris):
    import mlflow

    from components.registry import (
        CANDIDATE,
        PREVIOUS_PRODUCTION_TAG,
        PRODUCTION,
        PROMOTION_REASON_TAG,
        RegistryError,
        get_alias_version,
        log_lifelong_model,
        promote,
        register_version,
        rollback,
        set_alias,
        setup_tracking,
        tracking_uri_default,
    )

    base, checkpoint, concepts = chain
    uri = tracking_uri_default(tmp_path)
    assert uri == f"sqlite:///{tmp_path.resolve()}/.lfsd/mlflow/mlflow.db"
    setup_tracking(tmp_path)
    assert mlflow.get_tracking_uri() == uri

    with mlflow.start_run() as run:
        info = log_lifelong_model(checkpoint, base, tags=LINEAGE)
    assert info.signature.inputs.input_names() == ["prompt", "concept", "seed", "steps"]
    # Artifacts landed inside the workspace state dir, not ./mlruns or $HOME.
    assert (tmp_path / ".lfsd" / "mlflow" / "artifacts").is_dir()
    v1 = register_version(run.info.run_id, NAME, LINEAGE)
    set_alias(NAME, CANDIDATE, v1)
    assert get_alias_version(NAME, CANDIDATE) == v1
    assert get_alias_version(NAME, PRODUCTION) is None
    assert get_alias_version("no-such-model", PRODUCTION) is None
    assert promote(NAME, v1, "first release") is None
    assert get_alias_version(NAME, PRODUCTION) == v1

    # A fresh interpreter loads models:/NAME@production with nothing but the logged artifacts.
    c1 = concepts[0]
    prompt = c1.prompt()
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri, MLFLOW_REGISTRY_URI=uri, HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "-c", FRESH, f"models:/{NAME}@{PRODUCTION}", prompt, c1.name, str(STEPS)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert result["concepts"] == [c.name for c in concepts]
    assert result["seeds"] == [0, 0]
    for p in result["paths"]:  # the rebuilt ledger points into the downloaded model, not the training dirs
        assert not p.startswith(str(checkpoint.parent)) and not p.startswith(str(base))
        assert "artifacts" in p
    with_refs, without = (np.asarray(_png(t).convert("RGB")) for t in result["images"])
    assert with_refs.shape == without.shape == (32, 32, 3)
    assert not np.array_equal(with_refs, without)  # ICGen: the concept's references change the image
    expected = _expected(checkpoint, base, prompt, 0, c1.folder)
    assert np.abs(with_refs.astype(int) - expected.astype(int)).max() <= 2

    # Second version (registered by log_lifelong_model itself), promoted over v1, then rolled back.
    with mlflow.start_run():
        info2 = log_lifelong_model(checkpoint, base, registered_model_name=NAME, tags=LINEAGE)
    v2 = str(info2.registered_model_version)
    assert v2 != v1
    client = mlflow.MlflowClient()
    assert client.get_model_version(NAME, v2).tags["lfsd.git_commit"] == LINEAGE["lfsd.git_commit"]
    assert promote(NAME, v2, "better fidelity") == v1
    tags = client.get_model_version(NAME, v2).tags
    assert tags[PREVIOUS_PRODUCTION_TAG] == v1 and tags[PROMOTION_REASON_TAG] == "better fidelity"
    assert get_alias_version(NAME, PRODUCTION) == v2
    assert rollback(NAME) == v1
    assert get_alias_version(NAME, PRODUCTION) == v1
    with pytest.raises(RegistryError, match="no previous production"):
        rollback(NAME)  # v1 was the first production version

    # A version without full lineage cannot reach production.
    with mlflow.start_run() as run3:
        log_lifelong_model(checkpoint, base)
    v3 = register_version(run3.info.run_id, NAME, {"lfsd.git_commit": "1" * 40})
    with pytest.raises(RegistryError, match=r"lfsd.dataset_dvc_md5.*lfsd.checkpoint_dvc_md5"):
        promote(NAME, v3, "no lineage")
    assert get_alias_version(NAME, PRODUCTION) == v1


@pytest.mark.integration
def test_mlflow_server_and_models_serve_answer_one_request(chain, tmp_path, mlflow_uris):
    import mlflow

    from components.registry import PRODUCTION, get_alias_version, log_lifelong_model, promote, setup_tracking

    base, checkpoint, concepts = chain
    serve = None
    serve_log = tmp_path / "serve.log"
    port2 = free_port()
    # `mlflow models serve` execs `uvicorn` from PATH: put this interpreter's bin dir first, as an
    # activated venv would.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", HF_HUB_OFFLINE="1", PATH=path)
    with mlflow_server(tmp_path) as uri:
        try:
            setup_tracking(tmp_path, experiment="lfsd-integration", tracking_uri=uri)
            with mlflow.start_run():
                info = log_lifelong_model(checkpoint, base, registered_model_name=NAME, tags=LINEAGE)
            version = str(info.registered_model_version)
            promote(NAME, version, "integration test")
            assert get_alias_version(NAME, PRODUCTION) == version
            assert (tmp_path / "server-artifacts").is_dir()  # uploaded through the server's artifact proxy

            with serve_log.open("w") as out:
                serve = subprocess.Popen(
                    [
                        *mlflow_cli(),
                        "models",
                        "serve",
                        "-m",
                        f"models:/{NAME}@{PRODUCTION}",
                        "--env-manager",
                        "local",
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(port2),
                        "-w",
                        "1",
                        "-t",
                        "120",
                    ],
                    cwd=tmp_path,
                    env=dict(env, MLFLOW_TRACKING_URI=uri, MLFLOW_REGISTRY_URI=uri),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            wait_http(f"http://127.0.0.1:{port2}/ping", serve, 240, serve_log)

            c = concepts[1]
            body = {
                "dataframe_split": {
                    "columns": ["prompt", "concept", "seed", "steps"],
                    "data": [[c.prompt(), c.name, 7, STEPS]],
                }
            }
            request = urllib.request.Request(
                f"http://127.0.0.1:{port2}/invocations",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=120) as r:
                assert r.status == 200
                answer = json.loads(r.read())
            (row,) = answer["predictions"]
            assert row["seed"] == 7
            assert _png(row["image"]).size == (32, 32)
        finally:
            stop(serve)
