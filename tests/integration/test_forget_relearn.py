"""`lfsd forget --retrain-later`, relearning the concepts after the erased one (forget.retrain_later): the
chain it serves is the one a workspace that never received the concept trains, tensor for tensor; a
SIGKILL while relearning leaves the workspace as it was and the same command then completes."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.integration.conftest import NO_RAY, git, make_workspace, state_snapshot
from tests.integration.test_forget import _lfsd

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _tasks(ws) -> dict[str, dict]:
    """Per concept of the committed chain: its task number and its LoRA and token tensors."""
    from safetensors.torch import load_file

    from components.lifelong import read_ledger
    from components.lifelong.checkpoint import EMBEDS_FILE, LORA_DIR, LORA_WEIGHTS

    return {
        e.name: {
            "task": e.task,
            **load_file(Path(e.checkpoint) / LORA_DIR / LORA_WEIGHTS),
            **load_file(Path(e.checkpoint) / EMBEDS_FILE),
        }
        for e in read_ledger(ws.latest_checkpoint()).entries
    }


def _onboard_all(root: Path, folders: list[Path]):
    from components.chains.onboard import onboard
    from components.training.launch import in_process
    from components.workspace.layout import load_workspace

    ws = load_workspace(root)
    for folder in folders:
        onboard(ws, folder, launcher=in_process(1), log=lambda _: None)
    return ws


def test_relearning_gives_the_chain_that_never_saw_it_and_survives_sigkill(
    tmp_path, tiny_base_dir, monkeypatch, prefect_api
):
    from components.workspace.layout import load_workspace
    from components.world.concepts import write_concepts

    folders = write_concepts(tmp_path / "in", n=4, shots=3, seed=31)
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "RAY_ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    roots = {}
    for label, chosen in (("never", [folders[0], folders[2], folders[3]]), ("full", folders)):
        # One torch thread everywhere: the `lfsd` process trains in-process with runtime.threads, the
        # onboardings here with in_process(1); bitwise equality needs the same reductions.
        roots[label] = root = make_workspace(tmp_path / label, tiny_base_dir, {**NO_RAY, "runtime": {"threads": 1}})
        monkeypatch.setenv("LFSD_STATE_DIR", str(root / ".lfsd"))
        monkeypatch.setenv("LFSD_WORKSPACE", str(root))
        _onboard_all(root, chosen)
    never = _tasks(load_workspace(roots["never"]))
    root = roots["full"]
    ws = load_workspace(root)
    a, b, c, d = ws.learned_names()
    assert list(never) == [a, c, d]

    # SIGKILL after the first later concept was relearned: nothing changed; the same command completes.
    before = state_snapshot(root)
    args = ["forget", b, "--reason", "erasure request #9", "--workspace", str(root), "--retrain-later"]
    rc, out = _lfsd(root, args, tmp_path / "killed.log", prefect_api, LFSD_DIE_AT="after-forget-relearn")
    assert rc == -signal.SIGKILL and f"relearned {c} (task 3) without {b}" in out, out
    after = state_snapshot(root)  # a SIGKILL cleans nothing up: only the uncommitted removal folder is new
    assert {k: v for k, v in after.items() if k not in ("status", "checkpoints")} == {
        k: v for k, v in before.items() if k not in ("status", "checkpoints")
    }
    assert all(line.startswith(f"?? checkpoints/05-forget-{b}/") for line in after["status"].splitlines())
    assert {k: v for k, v in after["checkpoints"].items() if not k.startswith(f"05-forget-{b}/")} == before[
        "checkpoints"
    ]
    rc, out = _lfsd(root, args, tmp_path / "rerun.log", prefect_api)
    assert (
        rc == 0
        and f"relearned {c} (task 3)" in out
        and f"relearned {d} (task 4)" in out
        and f"{b}: erased; model version 5" in out
    ), out

    # The served chain: a, then c and d relearned under their own task numbers, inside the removal's folder,
    # equal to the workspace that never saw b (trained there as tasks 2 and 3).
    ws = load_workspace(root)
    served = _tasks(ws)
    assert list(served) == [a, c, d] and [served[n]["task"] for n in served] == [1, 3, 4]
    for name in (c, d):
        mine, theirs = served[name], never[name]
        rename = {k: k.replace(f"task{mine['task']}", f"task{theirs['task']}") for k in mine if k != "task"}
        assert sorted(rename.values()) == sorted(k for k in theirs if k != "task")
        gap = max(float((mine[k] - theirs[rename[k]]).abs().max()) for k in rename)
        assert gap == 0.0, f"{name}: relearned differs from never-learned by {gap}"
    assert [e.checkpoint for e in ws.ledger().entries][1:] == [
        f"checkpoints/05-forget-{b}/task3",
        f"checkpoints/05-forget-{b}/task4",
    ]
    record = json.loads(git(root, "show", f"HEAD:erasures/05-{b}.json"))
    assert record["retrained"] == [c, d]
    assert record["dropped_checkpoints"] == [f"checkpoints/02-{b}", f"checkpoints/03-{c}", f"checkpoints/04-{d}"]
    tracked = git(root, "ls-files", "checkpoints").splitlines()
    assert f"checkpoints/05-forget-{b}.dvc" in tracked and not any(f"03-{c}" in t or f"04-{d}" in t for t in tracked)
    assert not (root / "checkpoints" / f"03-{c}").exists()
    assert git(root, "status", "--porcelain", "--untracked-files=all") == ""
    assert set(record["measured"]) == {"fidelity_before", "fidelity_after", "fidelity_base"}
