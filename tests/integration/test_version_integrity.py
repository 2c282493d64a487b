"""Issue 30 §1 (MLflow side) and §7 (code and pickle): a registered version's bytes are checked against what was
recorded when it was written, against a real MLflow (sqlite store, local artifact store), no mocks.

One flipped exponent bit in a LoRA stored in the artifact store (the version's own, or one it shares from
the version before) and the version neither loads (`mlflow.pyfunc.load_model`, `load_version`) nor exports,
with one line naming the file and both hashes. A replaced python_model.pkl or code/ file, or a version
without lfsd's record (registered outside lfsd), is refused before MLflow unpickles or imports anything,
and loads when a person trusts it."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import struct
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration]

NAME = "lfsd-integrity-test"
LORA = "unet_lora/pytorch_lora_weights.safetensors"


@pytest.fixture(scope="module")
def chain(tiny_base_dir, tiny_training_config, tmp_path_factory):
    """Two concepts, one 'finetune' step each (a LoRA per task is all these tests need): (base dir,
    [task 1 checkpoint, task 2 checkpoint])."""
    import dataclasses

    from components.training.in_process_sequence import run_sequence
    from components.world.concepts import write_concepts

    root = tmp_path_factory.mktemp("integrity-chain")
    dirs = write_concepts(root / "concepts", n=2, shots=3, seed=5)
    cfg = dataclasses.replace(tiny_training_config, steps=1)
    result = run_sequence(tiny_base_dir, dirs, "finetune", cfg, None, root / "ckpt", log=lambda s: None)
    return tiny_base_dir, [t.checkpoint for t in result.tasks]


@pytest.fixture(scope="module")
def registry(chain, tmp_path_factory):
    """Version 1 (task 1) and version 2 (task 2, sharing the base and task 1 with version 1), registered
    once: {"v1": store folder of version 1, "v2": ...}. Each test leaves the stores as it found them."""
    import mlflow

    from components.registry import log_lifelong_model, setup_tracking

    mp = pytest.MonkeyPatch()
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "LFSD_STATE_DIR"):
        mp.delenv(var, raising=False)
    mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    setup_tracking(tmp_path_factory.mktemp("integrity-store"))
    base, ckpts = chain
    stores = {}
    for k, ckpt in enumerate(ckpts, start=1):
        with mlflow.start_run():
            log_lifelong_model(ckpt, base, registered_model_name=NAME, share_with=NAME, steps=2)
        client = mlflow.MlflowClient()
        model_id = str(client.get_model_version(NAME, str(k)).source).removeprefix("models:/")
        stores[f"v{k}"] = Path(client.get_logged_model(model_id).artifact_location.removeprefix("file://"))
        stores[f"id{k}"] = model_id
    yield stores
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    mp.undo()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _flip_exponent_bit(path: Path) -> None:
    """Bit 30 (the exponent's top bit) of the first fp32 value of the first tensor of a safetensors file."""
    data = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    name = sorted(k for k in header if k != "__metadata__")[0]
    assert header[name]["dtype"] == "F32"
    data[8 + n + header[name]["data_offsets"][0] + 3] ^= 0x40
    path.write_bytes(bytes(data))


def _lora_of(store: Path) -> Path:
    return next((store / "artifacts").glob(f"*/{LORA}"))


def _assert_one_line(err: BaseException, file: str, expected: str, found: str) -> None:
    text = str(err)
    assert "\n" not in text and file in text, text
    assert f"expected sha256 {expected}, found {found}" in text, text


@pytest.mark.parametrize("where", ["own", "shared"])
def test_a_flipped_bit_in_a_stored_lora_is_refused_by_load_and_export(registry, tmp_path, where):
    import mlflow

    from components.registry.export import ExportError, export
    from components.registry.integrity import IntegrityError
    from components.registry.pyfunc import load_version

    uri = f"models:/{NAME}/2"
    victim = _lora_of(registry["v2"] if where == "own" else registry["v1"])
    original, before = victim.read_bytes(), _sha(victim)
    assert load_version(uri).unwrap_python_model().concepts()  # intact: it loads
    _flip_exponent_bit(victim)
    try:
        after = _sha(victim)
        for load in (mlflow.pyfunc.load_model, load_version):
            with pytest.raises(IntegrityError) as err:
                load(uri)
            _assert_one_line(err.value, LORA, before, after)
        with pytest.raises(ExportError) as err:
            export(uri, tmp_path / "out")
        _assert_one_line(err.value, LORA, before, after)
        assert not (tmp_path / "out").exists()
    finally:
        victim.write_bytes(original)
    assert export(uri, tmp_path / "out")  # restored: exports again


def _untrusted(load_version, uri: str, match: str) -> None:
    from components.registry.integrity import IntegrityError

    with pytest.raises(IntegrityError, match=match) as err:
        load_version(uri)
    assert "\n" not in str(err.value)
    assert load_version(uri, trust=True).unwrap_python_model().concepts()


class _Planted:
    """What an attacker's pickle does when unpickled: here, create a file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_replaced_pickle_or_code_file_is_refused_before_it_runs_unless_trusted(registry, tmp_path):
    from components.registry.pyfunc import load_version

    uri, store = f"models:/{NAME}/1", registry["v1"]
    pkl, code = store / "python_model.pkl", store / "code" / "components" / "registry" / "pyfunc.py"
    pkl_bytes, code_text = pkl.read_bytes(), code.read_text()
    marker = tmp_path / "ran"
    try:
        pkl.write_bytes(pickle.dumps(_Planted(marker)))
        with pytest.raises(ValueError, match=r"python_model.pkl: content hash differs .*expected sha256"):
            load_version(uri)
        assert not marker.exists()  # refused before MLflow unpickled it
        pkl.write_bytes(pickle.dumps(pickle.loads(pkl_bytes), protocol=2))  # same object, other bytes
        _untrusted(load_version, uri, r"python_model.pkl: content hash differs")
        pkl.write_bytes(pkl_bytes)
        code.write_text(code_text + "\nimport os  # planted\n")
        _untrusted(load_version, uri, r"code/components/registry/pyfunc.py: content hash differs")
        code.write_text(code_text)
        (code.parent / "planted.py").write_text("raise SystemExit('planted')\n")
        _untrusted(load_version, uri, r"code/components/registry/planted.py: not in the version's record")
    finally:
        pkl.write_bytes(pkl_bytes)
        code.write_text(code_text)
        (code.parent / "planted.py").unlink(missing_ok=True)
    assert load_version(uri).unwrap_python_model().concepts()


def test_a_version_registered_outside_lfsd_is_refused_unless_trusted(registry):
    import mlflow

    from components.registry.integrity import PACKAGE_TAG
    from components.registry.pyfunc import load_version

    client = mlflow.MlflowClient()
    record = client.get_logged_model(registry["id1"]).tags[PACKAGE_TAG]
    client.delete_logged_model_tag(registry["id1"], PACKAGE_TAG)
    try:
        _untrusted(load_version, f"models:/{NAME}/1", r"registered outside lfsd \(no lfsd.package_sha256 tag")
    finally:
        client.set_logged_model_tags(registry["id1"], {PACKAGE_TAG: record})


def test_a_version_logged_before_per_file_hashes_is_checked_by_folder_hash(registry, tmp_path):
    """An index without per-file hashes (what lfsd wrote before): load and export still refuse a flipped bit,
    through the artifact folder's hash."""
    import mlflow

    from components.registry import integrity
    from components.registry.export import ExportError, export
    from components.registry.integrity import IntegrityError

    integrity._RECORDS.clear()  # what the export read of this version in this process, before its index changed
    uri, store = f"models:/{NAME}/1", registry["v1"]
    index, victim = store / "artifacts" / "index.json", _lora_of(registry["v1"])
    index_text, original = index.read_text(), victim.read_bytes()
    client = mlflow.MlflowClient()
    record = client.get_logged_model(registry["id1"]).tags["lfsd.package_sha256"]
    client.delete_logged_model_tag(registry["id1"], "lfsd.package_sha256")
    legacy = json.loads(index_text)
    index.write_text(json.dumps({"sha256": legacy["sha256"], "shared": legacy["shared"]}))
    try:
        assert export(uri, tmp_path / "ok")
        _flip_exponent_bit(victim)
        with pytest.raises(IntegrityError, match=r"content hash differs from the version's index"):
            mlflow.pyfunc.load_model(uri)
        with pytest.raises(ExportError, match=r"content hash differs from the version's index"):
            export(uri, tmp_path / "out")
        assert not (tmp_path / "out").exists()
    finally:
        victim.write_bytes(original)
        index.write_text(index_text)
        client.set_logged_model_tags(registry["id1"], {"lfsd.package_sha256": record})
        integrity._RECORDS.clear()
    shutil.rmtree(tmp_path / "ok")


def test_lfsd_generate_refuses_a_replaced_pickle_in_one_line_and_loads_it_with_trust(registry, tiny_base_dir, tmp_path):
    """The command a person runs: exit 2 with one `refused:` line naming the file, no image; --trust draws."""
    import os
    import subprocess
    import sys

    import mlflow

    from tests.integration.conftest import make_workspace

    ws = make_workspace(tmp_path / "ws", tiny_base_dir)
    env = {**os.environ, "LFSD_STATE_DIR": str(ws / ".lfsd"), "LFSD_WORKSPACE": str(ws)}
    env |= {"MLFLOW_TRACKING_URI": mlflow.get_tracking_uri(), "MLFLOW_REGISTRY_URI": mlflow.get_registry_uri()}
    out, pkl = tmp_path / "grid.png", registry["v1"] / "python_model.pkl"
    original = pkl.read_bytes()

    def generate(*extra: str) -> subprocess.CompletedProcess:
        args = ["generate", "a photo", "--n", "1", "--steps", "1", "--model", f"models:/{NAME}/1", "--out", str(out)]
        cmd = [sys.executable, "-m", "components.cli", *args, "--workspace", str(ws), *extra]
        return subprocess.run(cmd, cwd=ws, env=env, capture_output=True, text=True, timeout=300)

    pkl.write_bytes(pickle.dumps(pickle.loads(original), protocol=2))  # same object, other bytes
    try:
        refused = generate()
        lines = [line for line in refused.stderr.splitlines() if line.startswith("refused:")]
        assert refused.returncode == 2 and len(lines) == 1, refused.stderr[-2000:]
        assert "python_model.pkl: content hash differs" in lines[0] and "expected sha256" in lines[0]
        assert not out.exists()
        trusted = generate("--trust")
        assert trusted.returncode == 0 and out.is_file(), trusted.stderr[-2000:]
    finally:
        pkl.write_bytes(original)
