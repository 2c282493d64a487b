"""An SD-shaped base through the whole pipeline, with real `lfsd` processes: `lfsd init --base` on a folder
with Stable Diffusion 1.x's exact layout, two concepts onboarded (GX validation, DVC, Ray Train, the
forgetting evaluation, MLflow registration, the gate), `lfsd generate` from `@production` in a fresh
process; ICGen is off on a base without a context path and says so; a broken base folder and a base
whose hash changed are refused by name with nothing changed. The base is test data (random weights)."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import FAST, git, state_snapshot

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CONCEPTS = [REPO / "examples" / "concepts" / "00-byruri", REPO / "examples" / "concepts" / "01-xubyzo"]


def _lfsd(ws: Path, *args: str, prefect_api: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    from tests.integration.services import cli_env

    return subprocess.run(
        [sys.executable, "-m", "components.cli", *args],
        cwd=cwd or ws,
        env=cli_env(ws, prefect_api),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def _mlflow(ws: Path, query: str) -> list[tuple]:
    with sqlite3.connect(ws / ".lfsd" / "mlflow" / "mlflow.db") as con:
        return con.execute(query).fetchall()


@pytest.fixture(scope="module")
def sd_workspace(sd_base_dir, tmp_path_factory, prefect_api):
    """`lfsd init --base SD`, FAST params committed on top, two concepts onboarded by `lfsd onboard`.
    Yields (workspace, the two onboard outputs)."""
    tmp = tmp_path_factory.mktemp("sdws")
    ws = tmp / "ws"
    made = _lfsd(ws, "init", str(ws), "--base", str(sd_base_dir), cwd=tmp)
    assert made.returncode == 0, made.stdout + made.stderr
    params = yaml.safe_load((ws / "params.yaml").read_text())
    assert "a photo of a {}" in params["training"]["kd_templates"]  # the SD captions, not the world's
    for section, values in FAST.items():
        params.setdefault(section, {}).update(values)
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git(ws, "commit", "-qam", "test: fast params")
    outs = []
    for concept in CONCEPTS:
        proc = _lfsd(ws, "onboard", str(concept), prefect_api=prefect_api)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
        outs.append(proc.stdout + proc.stderr)
    yield ws, outs


def test_sd_shaped_base_onboards_two_concepts_and_serves_from_production(sd_workspace, sd_base_dir, tmp_path):
    ws, outs = sd_workspace
    # The base is versioned by DVC (an SD checkpoint is gigabytes), byte-identical to the folder given.
    assert (ws / "models" / "base.dvc").is_file() and not git(ws, "ls-files", "models/base")
    assert (ws / "models" / "base" / "model_index.json").read_bytes() == (sd_base_dir / "model_index.json").read_bytes()
    # Two tasks on one chain, the second trained from the first; every piece committed, nothing left over.
    assert sorted(p.name for p in (ws / "checkpoints").iterdir() if p.is_dir()) == ["01-byruri", "02-xubyzo"]
    assert git(ws, "status", "--porcelain") == ""
    ledger = yaml.safe_load((ws / "checkpoints" / "02-xubyzo" / "ledger.json").read_text())
    assert [e["name"] for e in ledger["entries"]] == ["byruri", "xubyzo"]
    # The LoRA sits on SD's own module names (what kohya / diffusers converters expect).
    from safetensors import safe_open

    with safe_open(ws / "checkpoints" / "02-xubyzo" / "unet_lora" / "pytorch_lora_weights.safetensors", "pt") as f:
        keys = list(f.keys())
    assert any("down_blocks.2.attentions.1.transformer_blocks.0.attn2.to_k.lora_A" in k for k in keys), keys[:4]
    assert not any("down_blocks.3.attentions" in k for k in keys)  # SD's last down block has no attention
    # ICGen: the SD folder has no context path, so the method ran without it and said so, everywhere.
    for out in outs:
        assert "ICGen off: the base has no trained context path" in out, out[-2000:]
    training = yaml.safe_load((ws / "checkpoints" / "01-byruri" / "training.json").read_text())
    assert training["icgen"].startswith("off")
    tags = {(v, k): val for v, k, val in _mlflow(ws, "select version, key, value from model_version_tags")}
    run_tags = [val for (val,) in _mlflow(ws, "select value from tags where key = 'lfsd.icgen'")]
    assert tags[(1, "lfsd.icgen")].startswith("off") and tags[(2, "lfsd.icgen")].startswith("off")
    assert len(run_tags) == 2 and all(v.startswith("off") for v in run_tags)
    assert tags[(2, "lfsd.ledger")] == "byruri,xubyzo" and tags[(2, "lfsd.gate")] == "passed"
    (production,) = _mlflow(ws, "select version from registered_model_aliases where alias = 'production'")[0]
    assert production == 2
    # A fresh process draws from production at the base's own resolution (64 px, read from its configs).
    from PIL import Image

    png = tmp_path / "out.png"
    gen = _lfsd(
        ws,
        "generate",
        "a <xubyzo> heart",
        "--model",
        "models:/lfs-diffusion@production",
        "--n",
        "1",
        "--steps",
        "3",
        "--out",
        str(png),
    )
    assert gen.returncode == 0, gen.stdout + gen.stderr
    assert Image.open(png).size[0] >= 64


def test_a_base_whose_hash_changed_is_refused_by_name_and_nothing_changes(sd_workspace, monkeypatch):
    """Another checkpoint copied over models/base: the onboarding chain refuses in its validate step, before
    anything is written (the CLI turns BaseMismatch into one line and exit 2: tests/unit/test_onboarding.py)."""
    from components.chains.onboard import onboard
    from components.lifelong import BaseMismatch
    from components.training.launch import in_process
    from components.workspace.layout import load_workspace

    ws, _ = sd_workspace
    monkeypatch.setenv("LFSD_STATE_DIR", str(ws / ".lfsd"))
    weights = ws / "models" / "base" / "unet" / "diffusion_pytorch_model.safetensors"
    saved = weights.read_bytes()
    before = state_snapshot(ws)
    try:
        weights.write_bytes(saved[:-4] + bytes(4))  # another base in the same place
        with pytest.raises(BaseMismatch, match=f"{ws / 'models' / 'base'}: base hash .* differs"):
            onboard(
                load_workspace(ws),
                REPO / "examples" / "concepts" / "02-vikovi",
                launcher=in_process(1),
                log=lambda s: None,
            )
    finally:
        weights.write_bytes(saved)
    assert state_snapshot(ws) == before


def test_a_folder_that_is_not_a_diffusion_model_is_refused_by_name(sd_base_dir, tmp_path):
    from components.model.base_folder import BaseFolderError, check_base_folder

    broken = tmp_path / "broken"
    shutil.copytree(sd_base_dir, broken)
    (broken / "unet" / "config.json").unlink()
    proc = _lfsd(tmp_path / "ws", "init", str(tmp_path / "ws"), "--base", str(broken), cwd=tmp_path)
    assert proc.returncode == 2 and f"{broken / 'unet' / 'config.json'}: missing" in proc.stderr, proc.stderr
    assert not (tmp_path / "ws").exists()  # nothing written
    # Each other way a folder fails, named in-process (the same check `lfsd init` runs).
    shutil.copy2(sd_base_dir / "unet" / "config.json", broken / "unet" / "config.json")
    (broken / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(BaseFolderError, match="does not load as a diffusion model"):
        check_base_folder(broken)
    shutil.rmtree(broken / "tokenizer")
    with pytest.raises(BaseFolderError, match=f"{broken / 'tokenizer'}: no CLIP tokenizer"):
        check_base_folder(broken)
    with pytest.raises(BaseFolderError, match="not a folder"):
        check_base_folder(tmp_path / "nothing-here")
