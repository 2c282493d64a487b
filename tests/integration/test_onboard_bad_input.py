"""Bad input through the real `lfsd onboard` (Prefect flow, in-process CLI): a clear error naming the
file and the reason, a non-zero exit, and no change to git, DVC, MLflow, the ledger or checkpoints.
(The accepted-and-normalised modes and the already-learned name are covered in test_pipeline.py.)"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.integration.conftest import state_snapshot

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = next((REPO / "examples" / "concepts").glob("00-*"))


def _noise(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def _first_png(folder: Path) -> Path:
    return sorted(folder.glob("*.png"))[0]


def _non_image(f: Path):
    (f / "notes.pdf").write_bytes(b"%PDF-1.4 not an image")
    return "notes.pdf"


def _truncated(f: Path):
    p = _first_png(f)
    p.write_bytes(p.read_bytes()[:60])
    return p.name


def _zero_bytes(f: Path):
    (f / "empty.png").write_bytes(b"")
    return "empty.png"


def _tiny(f: Path):
    _noise(8, 8).save(f / "tiny.png")
    return "tiny.png"


def _huge(f: Path):
    Image.new("RGB", (5000, 40), "white").save(f / "huge.png")
    return "huge.png"


def _too_few(f: Path):
    for p in sorted(f.glob("*.png"))[1:]:
        p.unlink()
    return "concept folder"


def _too_many(f: Path):
    for i in range(12):
        _noise(32, 32, seed=100 + i).save(f / f"extra-{i:02d}.png")
    return "concept folder"


def _duplicate(f: Path):
    shutil.copy(_first_png(f), f / "copy.png")
    return "copy.png"


def _no_yaml(f: Path):
    (f / "concept.yaml").unlink()
    return "concept.yaml"


def _malformed_yaml(f: Path):
    (f / "concept.yaml").write_text("name: [unclosed\nclass_word: square\n")
    return "concept.yaml"


def _dotdot_name(f: Path):
    (f / "concept.yaml").write_text("name: ../escape\nclass_word: square\n")
    return "concept.yaml"


def _slash_name(f: Path):
    (f / "concept.yaml").write_text("name: a/b\nclass_word: square\n")
    return "concept.yaml"


def _empty(f: Path):
    shutil.rmtree(f)
    f.mkdir()
    return "concept folder"


def _symlink_outside(f: Path):
    (f / "escape.png").symlink_to(REPO / "README.md")
    return "escape.png"


def _three_thousand_files(f: Path):
    for i in range(3000):
        (f / f"x{i:04d}.png").write_bytes(b"tiny")
    return "concept folder"


def _name_not_utf8(f: Path):
    shutil.copy(_first_png(f), os.fsencode(f) + b"/\xff.png")
    return "\\xff.png"


CASES = {
    "three-thousand-files": _three_thousand_files,
    "name-not-utf8": _name_not_utf8,
    "non-image": _non_image,
    "truncated": _truncated,
    "zero-bytes": _zero_bytes,
    "tiny": _tiny,
    "huge": _huge,
    "too-few-shots": _too_few,
    "too-many-shots": _too_many,
    "duplicate": _duplicate,
    "missing-yaml": _no_yaml,
    "malformed-yaml": _malformed_yaml,
    "dotdot-name": _dotdot_name,
    "slash-name": _slash_name,
    "empty": _empty,
    "symlink-outside": _symlink_outside,
}


def _submission(tmp_path: Path, case: str) -> tuple[Path, str]:
    folder = tmp_path / "submission" / EXAMPLE.name
    shutil.copytree(EXAMPLE, folder)
    return folder, CASES[case](folder)


def _assert_named(text: str, named: str) -> None:
    assert "REJECTED" in text, text
    problem_lines = [ln for ln in text.splitlines() if ln.strip().startswith("- ")]
    assert problem_lines, text
    if named != "concept folder":
        assert any(named in ln for ln in problem_lines), f"{named} not named in:\n{text}"


@pytest.mark.integration
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_concept_folder_fails_the_flow_and_changes_nothing(case, workspace, prefect_harness, tmp_path):
    from components.validation import ValidationError
    from flows.onboard import onboard_concept

    folder, named = _submission(tmp_path, case)
    before = state_snapshot(workspace)
    with pytest.raises(ValidationError) as err:
        onboard_concept(str(folder), workspace=str(workspace))
    _assert_named(str(err.value), named)
    assert state_snapshot(workspace) == before


@pytest.mark.integration
@pytest.mark.parametrize("case", ["zero-bytes", "three-thousand-files"])  # all in-process above; the script twice
def test_cli_refuses_before_prefect_starts_with_the_report(case, workspace, tmp_path):
    """The real console script in a fresh process, its Prefect API pointed at a closed port: the report
    (exit 2) proves the refusal came before Prefect was needed, let alone Ray (integrity issue, point 8)."""
    import subprocess
    import sys
    import time

    folder, named = _submission(tmp_path, case)
    before = state_snapshot(workspace)
    env = dict(os.environ, PREFECT_API_URL="http://127.0.0.1:9/api")
    lfsd = Path(sys.executable).with_name("lfsd")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(lfsd), "onboard", str(folder), "--workspace", str(workspace)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    print(f"{case}: refused in {time.perf_counter() - t0:.1f} s")  # measured, not asserted (machines are noisy)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    _assert_named(proc.stderr, named)
    assert state_snapshot(workspace) == before


DEVICE_CASES = {  # (workspace params.yaml sections, the command's --set items) -> what the one line names
    "cuda-without-cuda": ({"runtime": {"device": "cuda"}}, [], "runtime.device=cuda"),
    "fp16-on-the-cpu": ({"runtime": {"device": "cpu", "precision": "fp16"}}, [], "runtime.precision=fp16"),
    "ray-gpu-without-gpus": ({"ray": {"enabled": True, "use_gpu": True}}, [], "ray.use_gpu: true"),
    "set-cuda-for-this-command": ({}, ["--set", "runtime.device=cuda:1"], "runtime.device=cuda:1"),
    "set-is-for-where-not-what": ({}, ["--set", "training.steps=5"], "expected runtime.KEY=VALUE"),
}


@pytest.mark.integration
@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="CUDA is present: the refusals cannot happen")
@pytest.mark.parametrize("case", sorted(DEVICE_CASES))
def test_a_device_this_machine_lacks_is_one_line_and_changes_nothing(case, workspace, tmp_path):
    """Refused before the writer lock's work, Prefect or Ray start: exit 2, one line naming the setting,
    nothing committed, versioned or registered (the lock is released: a second command is not kept waiting)."""
    import os
    import subprocess
    import sys

    import yaml

    sections, flags, named = DEVICE_CASES[case]
    params = workspace / "params.yaml"
    old = yaml.safe_load(params.read_text())
    params.write_text(yaml.safe_dump(old | {k: (old.get(k) or {}) | v for k, v in sections.items()}))
    before = state_snapshot(workspace)
    lfsd = Path(sys.executable).with_name("lfsd")
    proc = subprocess.run(
        [str(lfsd), "onboard", str(EXAMPLE), "--workspace", str(workspace), "--no-wait", *flags],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and named in errors[0] and "Traceback" not in proc.stderr, proc.stderr
    assert state_snapshot(workspace) == before
    if not flags:  # doctor reads the workspace's params.yaml
        doctor = subprocess.run([str(lfsd), "doctor", "--workspace", str(workspace)], capture_output=True, text=True)
        assert doctor.returncode == 1 and named in doctor.stderr


@pytest.mark.integration
def test_out_of_memory_while_training_discards_the_attempt_and_says_what_to_change(workspace, monkeypatch):
    """The accelerator running out of memory mid-training (the real exception type, raised where the
    student's forward would raise it): the attempt is discarded (no commit, checkpoint, dataset copy or
    run), the writer lock is free again, and the CLI's one line names the settings that buy memory back."""
    import torch

    from components.chains.onboard import onboard
    from components.cli.running import out_of_memory
    from components.training import lfs_loss
    from components.training.launch import in_process
    from components.workspace.layout import load_workspace
    from components.workspace.lock import writer_lock

    def oom(self, step, rng):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(lfs_loss.LFSObjective, "loss", oom)
    ws = load_workspace(workspace)
    before = state_snapshot(workspace)
    with pytest.raises(torch.OutOfMemoryError) as err:
        onboard(ws, EXAMPLE, launcher=in_process(1), log=lambda m: None)
    after = state_snapshot(workspace)
    for key in ("head", "status", "data", "checkpoints", "mlflow"):  # pushed DVC objects are content-addressed
        assert after[key] == before[key], key
    message = out_of_memory(err.value)
    assert message and "\n" not in message and "training.gradient_checkpointing=true" in message
    assert out_of_memory(ValueError("not memory")) is None
    with writer_lock(workspace, "after the failure", wait=False):
        pass
