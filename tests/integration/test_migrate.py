"""`lfsd migrate` (issue 34): a 3-concept chain on the test base, its middle concept erased, moved to a
second base (the test base trained 20 more steps from another seed, `pretraining.further`): the two live
concepts on the new chain in order, the scorecard in MLflow, production unchanged until `lfsd promote`,
`lfsd rollback` back to the old base's version; a SIGKILL during the second concept's training, then the
same command completing with exactly one checkpoint per concept. Bad input: one line, nothing changed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import NO_RAY, git, make_workspace, state_snapshot

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # ~12 min on the loaded 2-core machine (load ~20)
LABEL = "b2"


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def second_base(tiny_base_dir, tmp_path_factory) -> Path:
    """The test base trained 20 more steps on a fresh 32-scene pool drawn with seed 1 (~5 s)."""
    from components.pretraining.further import train_further

    out = tmp_path_factory.mktemp("base2") / "base"
    train_further(tiny_base_dir, out, steps=20, seed=1, pool=32, batch=8)
    return out


@pytest.fixture(scope="module")
def chain(tiny_base_dir, tmp_path_factory):
    """A workspace with a, b, c onboarded (in this process, no Ray) and b erased; env set for the module."""
    from components.chains.forget import forget
    from components.chains.onboard import onboard
    from components.training.launch import in_process
    from components.workspace.layout import load_workspace
    from components.world.concepts import write_concepts

    tmp = tmp_path_factory.mktemp("migrate")
    with pytest.MonkeyPatch.context() as mp:
        for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "RAY_ADDRESS"):
            mp.delenv(var, raising=False)
        root = make_workspace(tmp / "ws", tiny_base_dir, {**NO_RAY, "runtime": {"threads": 1}})
        mp.setenv("LFSD_STATE_DIR", str(root / ".lfsd"))
        mp.setenv("LFSD_WORKSPACE", str(root))
        folders = write_concepts(tmp / "in", n=3, shots=3, seed=41)
        ws = load_workspace(root)
        for folder in folders:
            onboard(ws, folder, launcher=in_process(1), log=_quiet)
        a, b, c = ws.learned_names()
        forget(ws, b, "erasure request #34", log=_quiet)
        yield root, (a, b, c), tmp
        import mlflow

        while mlflow.active_run():
            mlflow.end_run()
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)


def _lfsd(root: Path, args: list[str], log: Path, **env) -> tuple[int, str]:
    from tests.integration.services import cli_env

    proc = subprocess.Popen(
        [sys.executable, "-m", "components.cli", *args, "--workspace", str(root)],
        cwd=root,
        env=cli_env(root, None, **env),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        rc = proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            import os

            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return rc, log.read_text()


def _production(root: Path) -> str | None:
    from components.registry import PRODUCTION, get_alias_version
    from components.workspace.layout import load_workspace
    from components.workspace.mlflow_store import open_tracking

    ws = load_workspace(root)
    open_tracking(ws)
    return get_alias_version(ws.params.pipeline.model_name, PRODUCTION)


def test_second_base_differs_measurably(tiny_base_dir, second_base):

    from components.lifelong.ledger import folder_hash
    from components.model.pipeline import load

    assert folder_hash(second_base) != folder_hash(tiny_base_dir)
    one, two = load(tiny_base_dir).unet.state_dict(), load(second_base).unet.state_dict()
    moved = max(float((one[k] - two[k]).abs().max()) for k in one)
    assert moved > 1e-3, moved
    made = json.loads((second_base / "lfsd_index.json").read_text())["further_trained"]
    assert (made["steps"], made["seed"]) == (20, 1)


def test_bad_input_is_one_line_and_changes_nothing(chain, second_base, tiny_model_config, tmp_path):
    import dataclasses
    import shutil

    from components.chains.migrate import MigrationRefused, migrate
    from components.chains.onboard import launcher
    from components.model.pipeline import build_tiny, save
    from components.workspace.layout import load_workspace

    root, (a, _, _), _ = chain
    ws = load_workspace(root)
    before = state_snapshot(root)
    junk = tmp_path / "junk"
    (junk / "unet").mkdir(parents=True)
    (junk / "unet" / "config.json").write_text("{}")
    rc, out = _lfsd(root, ["migrate", "--base", str(junk)], tmp_path / "junk.log")
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert rc == 2 and len(errors) == 1 and "not a usable base" in errors[0], out

    big = tmp_path / "big"  # 64 px: the concepts' 32 px shots would be upsampled
    save(build_tiny(dataclasses.replace(tiny_model_config, image_size=64), seed=3), big)
    with pytest.raises(MigrationRefused, match="shots are 32 px"):
        migrate(ws, big, "big", launcher=launcher, log=_quiet)

    lost = tmp_path / "lost"  # the dataset of `a` gone from the working tree, the cache and the remote
    lost.mkdir()
    for p in (root / "data" / "concepts" / a, root / ".dvc" / "cache", root / ".lfsd" / "dvc-remote"):
        shutil.move(p, lost / p.name if p.name != a else lost / "dataset")
    try:
        with pytest.raises(MigrationRefused, match="cannot be restored from DVC"):
            migrate(ws, second_base, "lost", launcher=launcher, log=_quiet)
    finally:
        shutil.rmtree(root / "data" / "concepts" / a, ignore_errors=True)
        shutil.move(lost / "dataset", root / "data" / "concepts" / a)
        shutil.rmtree(root / ".dvc" / "cache", ignore_errors=True)
        shutil.move(lost / "cache", root / ".dvc" / "cache")
        shutil.rmtree(root / ".lfsd" / "dvc-remote", ignore_errors=True)
        shutil.move(lost / "dvc-remote", root / ".lfsd" / "dvc-remote")
    assert state_snapshot(root) == before


def _committed(root: Path, folder: str) -> list[str]:
    names = git(root, "ls-tree", "--name-only", "HEAD", f"{folder}/").splitlines()
    return sorted(Path(n).name for n in names if n.endswith(".dvc"))


def test_migrate_survives_sigkill_scores_and_waits_for_promotion(chain, second_base, tmp_path):
    import mlflow

    from components.chains.onboard import onboard
    from components.lifelong import read_ledger
    from components.lifelong.ledger import folder_hash
    from components.publishing.promotion import preview, promote, rollback
    from components.training.launch import in_process
    from components.workspace.layout import load_workspace
    from components.world.concepts import write_concepts

    root, (a, b, c), tmp = chain
    old_chain, old_production = _committed(root, "checkpoints"), _production(root)
    args = ["migrate", "--base", str(second_base), "--name", LABEL]

    # SIGKILL while the second concept trains: the first is committed on the new chain, nothing else changed.
    rc, out = _lfsd(root, args, tmp_path / "killed.log", LFSD_DIE_AT="during-migrate-training-2")
    assert rc == -signal.SIGKILL, out[-3000:]
    assert f"not migrated, erased: {b}" in out and f"migrating concept 1/2: {a}" in out, out[-3000:]
    assert f"migrating concept 2/2: {c}" in out and "ETA 0:" in out, out[-3000:]
    assert _committed(root, f"checkpoints-{LABEL}") == [f"01-{a}.dvc"]
    assert _production(root) == old_production

    # Onboarded while the migration was stopped (it holds the lock only per concept): migrated too.
    (d,) = write_concepts(tmp / "later", n=1, shots=3, seed=77)
    onboard(load_workspace(root), d, launcher=in_process(1), log=_quiet)
    d = load_workspace(root).learned_names()[-1]

    rc, out = _lfsd(root, args, tmp_path / "rerun.log")
    assert rc == 0, out[-4000:]
    assert "migrating concept 1/3" not in out and f"migrating concept 2/3: {c}" in out, out[-4000:]
    assert f"migrating concept 3/3: {d}" in out and "scorecard:" in out, out[-4000:]
    ws = load_workspace(root)
    assert _committed(root, f"checkpoints-{LABEL}") == [f"01-{a}.dvc", f"02-{c}.dvc", f"03-{d}.dvc"]
    assert sorted(p.name for p in (root / f"checkpoints-{LABEL}").iterdir() if p.is_dir()) == [
        f"01-{a}",
        f"02-{c}",
        f"03-{d}",
    ]  # exactly one checkpoint per concept
    log = git(root, "log", "--format=%s")
    assert [log.count(f"migrate {LABEL}: {n}") for n in (f"01-{a}", f"02-{c}", f"03-{d}")] == [1, 1, 1]
    new = read_ledger(root / f"checkpoints-{LABEL}" / f"03-{d}")
    assert new.names() == [a, c, d] and new.base_hash == folder_hash(second_base)
    assert _committed(root, "checkpoints")[: len(old_chain)] == old_chain  # the old chain, untouched
    assert read_ledger(ws.latest_checkpoint()).base_hash == folder_hash(root / "models" / "base")

    # The scorecard: one MLflow run with the table; the version's card; production has not moved.
    client = mlflow.MlflowClient()
    (run,) = client.search_runs(
        [mlflow.get_experiment_by_name(ws.params.pipeline.experiment).experiment_id],
        "tags.`lfsd.kind` = 'migration'",
    )
    table = mlflow.load_table("scorecard.json", run_ids=[run.info.run_id])
    assert set(table["concept"]) == {a, c, d, "(chain)"} and b not in set(table["concept"])
    assert {"fidelity", "forgetting", "confusion", "rcf_similarity"} <= set(table["metric"])
    version = run.data.tags["lfsd.model_version"]
    mv = client.get_model_version(ws.params.pipeline.model_name, version)
    assert mv.tags["lfsd.chain"] == LABEL and mv.tags["lfsd.gate"] in ("passed", "failed")
    assert "Migration scorecard" in mv.description and f"| {c} | fidelity |" in mv.description
    assert _production(root) != version
    assert "Migration scorecard" in preview(ws, version)  # what `lfsd promote V` prints before it moves

    # A person promotes; rollback returns to the old base's version.
    promote(ws, version, "migration reviewed", log=_quiet)
    assert _production(root) == version
    served = mlflow.pyfunc.load_model(f"models:/{mv.name}@production").unwrap_python_model()
    assert served.concepts() == [a, c, d] and served.model.ledger.base_hash == folder_hash(second_base)
    back = rollback(ws, log=_quiet)
    assert back == _production(root) and back != version
    served = mlflow.pyfunc.load_model(f"models:/{mv.name}@production").unwrap_python_model()
    assert served.concepts() == [a, c, d] and served.model.ledger.base_hash == folder_hash(root / "models" / "base")
    tags = client.get_model_version(ws.params.pipeline.model_name, back).tags
    assert tags["lfsd.base_hash"] == folder_hash(root / "models" / "base") and "lfsd.chain" not in tags
