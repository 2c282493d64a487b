"""The orchestrated pipeline end to end, against a real MLflow server and a Ray head started on
127.0.0.1 by the test, in a throw-away git + DVC workspace with a tiny base (seconds per concept).

One sequence of two concepts (one with CMYK, RGBA, 16-bit and EXIF-rotated shots) through
`lifelong_sequence`, then: the lineage in MLflow, git and DVC; restoring data/ and checkpoints/ from
the DVC remote byte for byte; onboarding the same folder again (no-op); a different folder under a
learned name (rejected, nothing changes); a failing gate (production stays); promote and rollback.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.integration.conftest import git, state_snapshot
from tests.integration.services import mlflow_server

ORIENTATION = 0x0112


def _tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _odd_modes(folder: Path) -> None:
    """Re-save the shots as CMYK JPEG, RGBA PNG, 16-bit grayscale PNG and an EXIF-rotated JPEG."""
    shots = sorted(folder.glob("*.png"))
    imgs = [Image.open(p).convert("RGB") for p in shots]
    for p in shots:
        p.unlink()
    imgs[0].convert("CMYK").save(folder / "a-cmyk.jpg", quality=95)
    imgs[1].convert("RGBA").save(folder / "b-rgba.png")
    gray16 = np.asarray(imgs[2].convert("L")).astype(np.uint16) * 257
    Image.fromarray(gray16).save(folder / "c-gray16.png")
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    imgs[0].transpose(Image.Transpose.ROTATE_90).save(folder / "d-exif.jpg", exif=exif, quality=95)


def _set_gate(root: Path, **bounds) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["gate"].update(bounds)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture
def ray_head(workspace):
    from tests.integration.services import ray_head as start

    with start() as address:  # sets RAY_ADDRESS (and the head's token) inside the block
        yield address


@pytest.mark.integration
def test_sequence_registers_versions_gates_and_restores(workspace, prefect_harness, ray_head, tmp_path, monkeypatch):
    import mlflow

    from components.lifelong import LEDGER_FILE, Ledger
    from components.registry import CANDIDATE, PRODUCTION, REQUIRED_LINEAGE_TAGS, get_alias_version
    from components.validation import ValidationError
    from components.versioning import restore, status_clean
    from components.workspace.layout import load_workspace
    from components.world.concepts import write_concepts
    from flows.onboard import onboard_concept
    from flows.registry import promote, rollback
    from flows.sequence import lifelong_sequence

    c1, c2, _ = write_concepts(tmp_path / "inbox", n=3, shots=4, seed=7)
    c3 = _near(c1, tmp_path / "near")  # same class and body colour as c1: the nearness check warns
    _odd_modes(c2)
    head0 = git(workspace, "rev-parse", "HEAD")
    with mlflow_server(tmp_path) as uri:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        results = lifelong_sequence([str(c1), str(c2)], workspace=str(workspace), run_name="test-seq")
        assert [r.status for r in results] == ["onboarded", "onboarded"]
        ws = load_workspace(workspace)
        name = ws.params.pipeline.model_name

        # git: one commit per concept; DVC: clean, everything in the remote
        log = git(workspace, "log", "--format=%s", f"{head0}..HEAD").splitlines()
        assert len(log) == 2 and all(s.startswith("onboard ") for s in log), log
        assert status_clean(workspace)
        assert git(workspace, "status", "--porcelain") == ""

        # ledger: ordered, workspace-relative paths; normalised dataset is 8-bit RGB PNG
        ledger = Ledger.read(ws.latest_checkpoint() / LEDGER_FILE)
        names = [yaml.safe_load((c / "concept.yaml").read_text())["name"] for c in (c1, c2)]
        assert ledger.names() == names
        assert all(
            not Path(e.checkpoint).is_absolute() and not Path(e.references).is_absolute() for e in ledger.entries
        )
        shots = sorted((ws.data_dir / names[1]).glob("*.png"))
        assert len(shots) == 4 and all(Image.open(p).mode == "RGB" for p in shots)

        # MLflow: parent run + one nested run per concept, a version per concept with lineage
        client = mlflow.MlflowClient(uri, uri)
        exp = client.get_experiment_by_name(ws.params.pipeline.experiment)
        runs = client.search_runs([exp.experiment_id])
        parents = [r for r in runs if r.data.tags.get("lfsd.kind") == "sequence"]
        children = [r for r in runs if r.data.tags.get("lfsd.kind") == "concept"]
        assert len(parents) == 1 and len(children) == 2
        assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
        assert {"avg_forgetting", "rcf_preservation", "new_concept_fidelity"} <= set(children[0].data.metrics)
        versions = sorted(client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version))
        assert [v.version for v in versions] == ["1", "2"]
        for v in versions:
            assert all(v.tags.get(t) for t in REQUIRED_LINEAGE_TAGS), v.tags
            assert v.tags["lfsd.gate"] == "passed"
        assert get_alias_version(name, PRODUCTION) == "2" and get_alias_version(name, CANDIDATE) == "2"
        assert versions[1].tags["lfsd.git_commit"] == git(workspace, "rev-parse", "HEAD")

        # what a reviewer sees without a download: the story of each run, the card of each version
        _assert_runs_tell_their_story(client, sorted(children, key=lambda r: r.info.start_time), names, ledger)
        for v in versions:
            card = v.description
            assert all(e.token in card for e in ledger.entries[: int(v.version)]), card
            assert "Gate: passed" in card and "avg_forgetting" in card and v.tags["lfsd.git_commit"] in card
        _assert_prefect_artifacts(names)
        _assert_dvc_shows_metrics_and_plots(workspace, names)

        # nothing is lost: data/ and checkpoints/ come back from the DVC remote byte for byte
        kept = {d: _tree(workspace / d) for d in ("data", "checkpoints")}
        shutil.rmtree(workspace / "data")
        shutil.rmtree(workspace / "checkpoints")
        restore(
            workspace,
            [f"data/concepts/{n}" for n in names]
            + [ws.rel(c) for c in (ws.checkpoint_dir / f"01-{names[0]}", ws.checkpoint_dir / f"02-{names[1]}")],
        )
        assert {d: _tree(workspace / d) for d in ("data", "checkpoints")} == kept

        # the same folder again: a no-op that says so
        before = state_snapshot(workspace)
        again = onboard_concept(str(c1), workspace=str(workspace))
        assert again.status == "already-onboarded"
        assert state_snapshot(workspace) == before

        # a different folder under a learned name: rejected, nothing changes
        impostor = tmp_path / "impostor"
        shutil.copytree(c3, impostor)
        meta = yaml.safe_load((impostor / "concept.yaml").read_text())
        (impostor / "concept.yaml").write_text(yaml.safe_dump({**meta, "name": names[0]}))
        with pytest.raises(ValidationError, match="already"):
            onboard_concept(str(impostor), workspace=str(workspace))
        assert state_snapshot(workspace) == before

        # c1's photos again, re-encoded, under a new name: refused naming the learned concept, nothing changes
        copy = _reencoded(c1, tmp_path / "copy", "vikoby")
        with pytest.raises(ValidationError, match=f"already learned as <{names[0]}>"):
            onboard_concept(str(copy), workspace=str(workspace))
        assert state_snapshot(workspace) == before

        # a failing gate: the version is registered and tagged, production stays
        _set_gate(workspace, min_new_concept_fidelity=2.0)
        git(workspace, "commit", "-qam", "stricter gate")
        third = onboard_concept(str(c3), workspace=str(workspace))
        assert third.status == "onboarded" and third.version == "3" and third.gate.startswith("failed")
        v3 = client.get_model_version(name, "3")
        assert v3.tags["lfsd.gate"] == "failed" and "new_concept_fidelity" in v3.tags["lfsd.gate_reason"]
        assert get_alias_version(name, PRODUCTION) == "2" and get_alias_version(name, CANDIDATE) == "3"
        # c3 is near c1: said on the version (tag, card) and in its checkpoint's report, and scored that step
        assert v3.tags["lfsd.near"].startswith(f"<{names[0]}>: ") and "Near learned concepts" in v3.description
        report = json.loads((ws.latest_checkpoint() / "nearness.json").read_text())
        assert names[0] in report["warned"] and {n["name"] for n in report["near"]} == set(names)
        assert "lfsd.near" not in versions[1].tags  # c2 is not near c1

        # by hand: the card and the change are shown first; then promote 3, roll back to 2
        from components.publishing.promotion import preview

        shown = preview(ws, "3")
        assert (
            "v3" in shown
            and "production: version 2 -> version 3" in shown
            and "concepts added:   " + third.concept in shown
        )
        assert promote("3", reason="accepted by a reviewer", workspace=str(workspace)) == "2"
        assert get_alias_version(name, PRODUCTION) == "3"
        assert rollback(workspace=str(workspace)) == "2"
        assert get_alias_version(name, PRODUCTION) == "2"


def _near(learned: Path, out: Path) -> Path:
    """A concept folder of another unseen object with the class and body colour of `learned`."""
    from components.world.concepts import ConceptSpec, write_concepts
    from components.world.scenes import Instance, sample_instance

    mine = Instance(*yaml.safe_load((learned / "concept.yaml").read_text())["world_instance"].split("-"))
    rng = np.random.default_rng(0)
    draws = (sample_instance(rng, unseen=True, cls=mine.cls) for _ in range(5000))
    near = next(i for i in draws if i.colour == mine.colour and i.key != mine.key)
    return write_concepts(out, n=1, shots=4, seed=11, specs=[ConceptSpec("mirupe", near.cls, near)])[0]


def _reencoded(folder: Path, out: Path, name: str) -> Path:
    """`folder`'s photos as JPEG under another concept name."""
    out.mkdir(parents=True)
    for p in sorted(folder.glob("*.png")):
        Image.open(p).convert("RGB").save(out / f"{p.stem}.jpg", "JPEG", quality=85)
    meta = yaml.safe_load((folder / "concept.yaml").read_text())
    (out / "concept.yaml").write_text(yaml.safe_dump({"name": name, "class_word": meta["class_word"]}))
    return out


def _assert_runs_tell_their_story(client, children, names, ledger) -> None:
    """Dataset input (DVC md5 as digest), system metrics and loss curves at their steps, the forgetting
    history at task indexes, and the A[k][j] table."""
    for k, run in enumerate(children, 1):
        run = client.get_run(run.info.run_id)
        (inp,) = run.inputs.dataset_inputs
        assert inp.dataset.name == names[k - 1] and run.data.tags["lfsd.dataset_dvc_md5"].startswith(inp.dataset.digest)
        tags = {t.key: t.value for t in inp.tags}
        assert (
            tags["class_word"] == ledger.entries[k - 1].class_word
            and tags["shots"] == "4"
            and tags["mlflow.data.context"] == "training"
        )
        system = [m for m in run.data.metrics if m.startswith("system/")]
        assert "system/cpu_utilization_percentage" in system and "system/system_memory_usage_megabytes" in system
        assert len(client.get_metric_history(run.info.run_id, "loss.denoise")) >= 2
        first = client.get_metric_history(run.info.run_id, f"fidelity.{names[0]}")
        assert sorted(m.step for m in first) == list(range(1, k + 1))
        assert "forgetting_matrix.json" in {a.path for a in client.list_artifacts(run.info.run_id)}
    import mlflow

    table = mlflow.load_table("forgetting_matrix.json", run_ids=[children[-1].info.run_id])
    assert list(table["task"]) == [1, 2] and list(table["learned"]) == names


def _assert_prefect_artifacts(names) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from components.publishing.summary import artifact_key

    with get_client(sync_client=True) as client:
        keys = [artifact_key("onboard", n) for n in names] + ["sequence-test-seq"]
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)))
    by_key = {a.key: a for a in found}
    assert set(by_key) == set(keys), sorted(by_key)
    assert "model version 1" in by_key[keys[0]].data and "gate **passed" in by_key[keys[0]].data
    assert all(n in by_key["sequence-test-seq"].data for n in names)


def _assert_dvc_shows_metrics_and_plots(root: Path, names) -> None:
    import json
    import subprocess
    import sys

    dvc = [str(Path(sys.executable).with_name("dvc"))]
    shown = json.loads(
        subprocess.run([*dvc, "metrics", "show", "--json"], cwd=root, check=True, capture_output=True, text=True).stdout
    )
    metrics = next(iter(shown.values()))["data"]["metrics/forgetting.json"]["data"]
    assert metrics["tasks"] == 2 and metrics["newest"] == names[-1]
    plots = json.loads(
        subprocess.run([*dvc, "plots", "show", "--json"], cwd=root, check=True, capture_output=True, text=True).stdout
    )
    (plot,) = plots["data"]["metrics/history.json"]
    rows = plot["content"]["data"]["values"]
    assert {(r["task"], r["concept"]) for r in rows} == {(1, names[0]), (2, names[1])}
    assert {r["field"] for r in rows} == {"mean_fidelity", "avg_forgetting", "new_concept_fidelity", "rcf_similarity"}
