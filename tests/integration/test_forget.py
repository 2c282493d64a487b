"""Erasure requests on a real git + DVC workspace with sqlite MLflow: `forget` takes the middle concept of
a 5-concept chain out of the model, no copy of its photos is left anywhere (scanned by sha256 of the
originals and the normalised copies and by decoding every image), old versions can no longer serve,
the chain goes on; bad requests change nothing; `lfsd forget` SIGKILLed after its commit and after its
registration completes on the next run."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.integration.conftest import git, state_snapshot

pytestmark = [pytest.mark.integration, pytest.mark.slow]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _quiet(message: str) -> None:
    pass


def _chain(workspace: Path, tmp_path: Path, n: int = 5):
    from components.chains.onboard import onboard
    from components.training.launch import in_process
    from components.workspace.layout import load_workspace
    from components.world.concepts import write_concepts

    folders = write_concepts(tmp_path / "in", n=n + 1, shots=3, seed=31)
    ws = load_workspace(workspace)
    for folder in folders[:n]:
        onboard(ws, folder, launcher=in_process(1), log=_quiet)
    return ws, folders


def _fingerprints(folders: list[Path]) -> tuple[set[str], list[np.ndarray]]:
    """sha256 and md5 of every image file, and the decoded pixels of each."""
    from PIL import Image

    hashes, pixels = set(), []
    for folder in folders:
        for p in sorted(folder.iterdir()):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                data = p.read_bytes()
                hashes |= {hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()}
                pixels.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    return hashes, pixels


def _traces(roots: list[Path], hashes: set[str], pixels: list[np.ndarray]) -> list[str]:
    """Every file under `roots` whose bytes hash to a photo, or that decodes to a photo's pixels."""
    from PIL import Image

    found = []
    for root in roots:
        for p in root.rglob("*"):
            if not p.is_file() or p.is_symlink():
                continue
            data = p.read_bytes()
            if hashlib.sha256(data).hexdigest() in hashes or hashlib.md5(data).hexdigest() in hashes:
                found.append(f"{p} (bytes)")
                continue
            if data[:8] == b"\x89PNG\r\n\x1a\n" or data[:3] == b"\xff\xd8\xff":
                try:
                    image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
                except OSError:
                    continue
                if any(image.shape == q.shape and np.array_equal(image, q) for q in pixels):
                    found.append(f"{p} (pixels)")
    return found


def _lfsd(ws: Path, args: list[str], log: Path, api: str, **env) -> tuple[int, str]:
    """`lfsd ARGS` as a real process (its own process group) in the workspace."""
    from tests.integration.services import cli_env

    proc = subprocess.Popen(
        [sys.executable, "-m", "components.cli", *args],
        cwd=ws,
        env=cli_env(ws, api, **env),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        rc = proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return rc, log.read_text()


def _set_gate(workspace: Path, bound: float) -> None:
    """params.yaml's min_new_concept_fidelity, committed (a workspace's params are versioned)."""
    import yaml

    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["gate"]["min_new_concept_fidelity"] = bound
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    git(workspace, "commit", "-qam", f"gate bound {bound}")


def test_forget_the_middle_of_five_leaves_no_trace_survives_sigkill_and_the_chain_goes_on(
    workspace, tmp_path, prefect_api
):
    import mlflow

    from components.chains.forget import forget
    from components.chains.onboard import onboard
    from components.erasure.pull import ErasedData, pull
    from components.erasure.record import ErasureRefused
    from components.registry import RegistryError, promote
    from components.training.launch import in_process
    from components.workspace.layout import load_workspace

    ws, folders = _chain(workspace, tmp_path)
    names = ws.learned_names()
    name = names[2]
    inbox_copy = workspace / "inbox" / ".done" / folders[2].name  # the scheduled path keeps what it onboarded
    inbox_copy.parent.mkdir(parents=True)
    subprocess.run(["cp", "-r", str(folders[2]), str(inbox_copy)], check=True)
    hashes, pixels = _fingerprints([folders[2], ws.data_dir / name])
    assert _traces([workspace], hashes, pixels)  # the scan finds what is there before
    client = mlflow.MlflowClient()
    model = ws.params.pipeline.model_name
    holding = sorted(
        (str(v.version) for v in client.search_model_versions(f"name='{model}'") if name in v.tags["lfsd.ledger"]),
        key=int,
    )
    assert holding == ["3", "4", "5"]

    # Bad requests, and a removal production would need while the chain without it fails the gate:
    # a clear refusal, nothing changed.
    _set_gate(workspace, 2.0)
    ws = load_workspace(workspace)
    before = state_snapshot(workspace)
    for bad, reason, why in (
        ("nobody", "test", "not a concept of this workspace"),
        (name, " ", "needs a reason"),
        (name, "test", "fails the promotion gate.*production \\(version 5\\) holds"),
    ):
        with pytest.raises(ErasureRefused, match=why):
            forget(ws, bad, reason, log=_quiet)  # refusals, with the default removal (the drop)
        assert state_snapshot(workspace) == before
    _set_gate(workspace, -1.0)

    # `lfsd forget --retrain-later` SIGKILLed after its commit, then after its registration; the third run
    # completes (it relearns the two later concepts on Ray; the drop alone is the forced removal below).
    args = ["forget", name, "--reason", "erasure request #7", "--workspace", str(workspace), "--retrain-later"]
    for point in ("after-forget-commit", "after-forget-register"):
        rc, out = _lfsd(workspace, args, tmp_path / f"{point}.log", prefect_api, LFSD_DIE_AT=point)
        assert rc == -signal.SIGKILL, out
    rc, out = _lfsd(workspace, args, tmp_path / "rerun.log", prefect_api)
    assert rc == 0 and f"{name}: erased; model version 6" in out, out
    assert "finishing the erasure now" in out
    ws = load_workspace(workspace)
    assert ws.learned_names() == [n for n in names if n != name]
    assert [p.name for p in ws.checkpoints()][-1] == f"06-forget-{name}"
    assert sum(c.startswith(f"forget {name}") for c in git(workspace, "log", "--format=%s").splitlines()) == 1
    versions = client.search_model_versions(f"name='{model}'")
    assert len(versions) == 6 and [str(v.version) for v in versions if v.tags.get("lfsd.forgot") == name] == ["6"]

    # No copy of the photos anywhere: workspace (data, checkpoints, inbox), its state folder (MLflow
    # artifacts, DVC remote, figures), the DVC cache.
    assert _traces([workspace], hashes, pixels) == []
    assert not inbox_copy.exists() and not (ws.data_dir / name).exists()
    assert git(workspace, "status", "--porcelain", "--untracked-files=all") == ""

    # Old versions that held it: files gone, tagged, refused by promote and by loading.
    for v in holding:
        mv = client.get_model_version(model, v)
        assert mv.tags["lfsd.erased"] == name and "erasure request #7" in mv.tags["lfsd.erasure"]
        assert "figures/samples.png" not in {f.path for f in client.list_artifacts(mv.run_id, "figures")}
        with pytest.raises(RegistryError, match="cannot be promoted"):
            promote(model, v, reason="try")
    with pytest.raises(Exception, match="erased"):
        mlflow.pyfunc.load_model(f"models:/{model}/4")
    from components.cli.generate_command import _erased  # what `lfsd generate --model URI` checks before loading

    assert "held " + name in _erased(f"models:/{model}/4") and _erased(f"models:/{model}@production") is None
    new = client.get_model_version(model, "6")
    assert new.tags["lfsd.forgot"] == name and new.tags["lfsd.forgot_reason"] == "erasure request #7"
    assert name not in new.tags["lfsd.ledger"].split(",") and new.tags["lfsd.gate"] == "passed"
    assert "removes" in new.description and name in new.description
    assert str(client.get_model_version_by_alias(model, "production").version) == "6"
    assert json.loads(new.tags["lfsd.purged"])["cache"] > 0

    # The record: in git and on the run; names places, never a photo or its hash.
    record_text = git(workspace, "show", f"HEAD:erasures/06-{name}.json")
    record = json.loads(record_text)
    assert record["concept"] == name and record["reason"] == "erasure request #7" and record["requested_by"]
    assert record["model_versions"] == holding and len(record["runs"]) == 3
    assert record["dvc_places"] == ["cache", "remote local"] and record["inbox_copies"] == [ws.rel(inbox_copy)]
    assert not any(h in record_text for h in hashes)
    assert set(record["measured"]) == {"fidelity_before", "fidelity_after", "fidelity_base"}
    erasure = json.loads(Path(client.download_artifacts(new.run_id, "erasure.json", str(tmp_path))).read_text())
    assert erasure == record

    # The same request again: refused, it was erased.
    with pytest.raises(ErasureRefused, match=f"'{name}' was already erased on .* by .* \\(erasure request #7\\)"):
        forget(ws, name, "again", log=_quiet)

    # An old commit's pointers resolve to nothing: `lfsd pull` there names the erasure, pulls the rest.
    git(workspace, "checkout", "-q", f"HEAD~{1 + 1}")  # before the erasure and the gate-bound commit
    with pytest.raises(ErasedData, match=f"data/concepts/{name} was erased on .* \\(erasure request #7"):
        pull(ws)
    git(workspace, "checkout", "-q", "main")

    # The chain goes on: a new concept on top of the chain without it (task numbers never reused).
    nxt = onboard(ws, folders[5], launcher=in_process(1), log=_quiet)
    assert nxt.status == "onboarded" and nxt.checkpoint == f"checkpoints/07-{nxt.concept}"
    ledger = ws.ledger()
    assert ledger.names() == [n for n in names if n != name] + [nxt.concept]
    assert [e.task for e in ledger.entries] == [1, 2, 4, 5, 6]
    forgetting = json.loads((ws.latest_checkpoint() / "forgetting.json").read_text())["metrics"]
    assert forgetting["concepts"] == ledger.names() and np.array(forgetting["matrix"]).shape == (5, 5)
    assert git(workspace, "status", "--porcelain", "--untracked-files=all") == ""
    assert _traces([workspace], hashes, pixels) == []

    # --force: erased although the chain without it fails the gate; production serves the version without it.
    _set_gate(workspace, 2.0)
    forced = forget(load_workspace(workspace), names[0], "licence ended", log=_quiet, force=True)  # the drop
    assert forced.gate.startswith("failed") and forced.production == forced.version == "8"
    record = json.loads(git(workspace, "show", f"HEAD:erasures/08-{names[0]}.json"))
    assert record["forced"] is True and record["retrained"] == []
    assert record["dropped_checkpoints"] == [record["checkpoint"]]
