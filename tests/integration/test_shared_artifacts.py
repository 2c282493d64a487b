"""A version stores only what the version before it does not (registry/shared_artifacts.py), against real
MLflow (sqlite store): version 2 of a two-concept chain holds no copy of the base or of task 1, yet loads
and draws exactly what an unshared copy of it draws, exports, and refuses to load once task 1's one
stored copy is erased; a stored copy that was altered is never used."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

NAME = "lfsd-shared-test"


@pytest.fixture(scope="module")
def chain(tiny_base_dir, tiny_training_config, tmp_path_factory):
    """Two concepts learned with 'lfs', 3 steps each: (base dir, [task 1 checkpoint, task 2 checkpoint], names)."""
    from components.training.concept import read_concept
    from components.training.in_process_sequence import run_sequence
    from components.world.concepts import write_concepts

    root = tmp_path_factory.mktemp("shared-chain")
    dirs = write_concepts(root / "concepts", n=2, shots=3, seed=5)
    result = run_sequence(tiny_base_dir, dirs, "lfs", tiny_training_config, None, root / "ckpt", log=lambda s: None)
    return tiny_base_dir, [t.checkpoint for t in result.tasks], [read_concept(d).name for d in dirs]


@pytest.fixture
def tracking(tmp_path, monkeypatch):
    import mlflow

    from components.registry import setup_tracking

    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "LFSD_STATE_DIR"):
        monkeypatch.delenv(var, raising=False)
    experiment = setup_tracking(tmp_path)
    yield experiment
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def _register(checkpoint: Path, base: Path, names: list[str], share: bool) -> tuple[str, Path]:
    """(version, the folder its logged model stores) of `checkpoint` registered under NAME."""
    import mlflow

    from components.registry import log_lifelong_model

    tags = {"lfsd.ledger": ",".join(names)}  # what erasure.versions_holding reads
    with mlflow.start_run(tags=tags):
        info = log_lifelong_model(
            checkpoint, base, registered_model_name=NAME, tags=tags, share_with=NAME if share else None, steps=2
        )
    version = str(info.registered_model_version)
    model_id = str(mlflow.MlflowClient().get_model_version(NAME, version).source).removeprefix("models:/")
    location = mlflow.MlflowClient().get_logged_model(model_id).artifact_location
    return version, Path(location.removeprefix("file://"))


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _draw(version: str, concept: str) -> np.ndarray:
    import mlflow

    from components.registry import decode_png

    model = mlflow.pyfunc.load_model(f"models:/{NAME}/{version}")
    out = model.predict(
        pd.DataFrame({"prompt": [f"a photo of {concept}"], "concept": [concept], "seed": [3], "steps": [2]})
    )
    return np.asarray(decode_png(out["image"][0]).convert("RGB"))


@pytest.mark.slow
def test_a_version_stores_only_what_is_new_and_loads_exports_and_erases_like_a_full_copy(chain, tracking, tmp_path):
    import mlflow

    from components.registry.erased_versions import erase_from_registry
    from components.registry.export_source import read_version
    from components.registry.pyfunc import ErasedConceptError
    from components.registry.shared_artifacts import stored_by_version

    base, (ckpt1, ckpt2), names = chain
    v1, store1 = _register(ckpt1, base, names[:1], share=True)  # nothing before it: stores everything
    v2, store2 = _register(ckpt2, base, names, share=True)
    full, store_full = _register(ckpt2, base, names, share=False)  # the same chain, every artifact copied

    client = mlflow.MlflowClient()
    held = stored_by_version(client, client.get_model_version(NAME, v2))
    assert set(held) == {"base", "checkpoint_01", "checkpoint_02", "references_01", "references_02"}
    for key in ("base", "checkpoint_01", "references_01"):  # shared: they point into version 1's store
        assert str(store1) in held[key]["uri"], key
    for key in ("checkpoint_02", "references_02"):
        assert str(store2) in held[key]["uri"], key
    base_bytes = _bytes(base)
    assert _bytes(store1) > base_bytes and _bytes(store_full) > base_bytes
    assert _bytes(store2) < _bytes(store_full) - base_bytes  # no base copy (and no task-1 copy) in version 2

    # Loaded, the shared version is the full copy: same concepts, same pixels.
    for concept in names:
        assert np.array_equal(_draw(v2, concept), _draw(full, concept)), concept
    (tmp_path / "export").mkdir()
    exported = read_version(f"models:/{NAME}/{v2}", tmp_path / "export")
    assert [c.name for c in exported.concepts] == names
    assert exported.base["architecture"] == "lfsd-world"  # the base's unet config was read where it is stored

    # An altered stored copy is never used.
    refs = next((store1 / "artifacts").glob("references_01"))
    victim = sorted(p for p in refs.iterdir() if p.is_file())[0]
    original = victim.read_bytes()
    victim.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(ValueError, match=r"references_01.*content hash differs"):
        mlflow.pyfunc.load_model(f"models:/{NAME}/{v2}")
    victim.write_bytes(original)

    # Erasing concept 1 deletes its one stored copy (in version 1) and the full copy's: version 2 cannot load.
    touched = erase_from_registry(client, NAME, tracking, names[0], 1, "test erasure")
    assert sorted(touched["model_versions"], key=int) == sorted([v1, v2, full], key=int)
    assert not (store1 / "artifacts" / ckpt1.name).exists()
    for version in (v2, full):
        with pytest.raises(ErasedConceptError, match=names[0]):
            mlflow.pyfunc.load_model(f"models:/{NAME}/{version}")
