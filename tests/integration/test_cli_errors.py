"""Every expected failure of the command line, as a new user makes it, is one `error: ...` line (plus the
full log's path where the command writes one) and exit 1 or 2, never a traceback; `--debug` shows the
traceback. Real `lfsd` processes, in a fresh workspace and outside any; none of these starts a service."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _lfsd(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    from tests.integration.services import cli_env

    env = cli_env(cwd) | {"HOME": str(cwd), "COLUMNS": "200"}
    env.pop("LFSD_STATE_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "components.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def _one_line(r: subprocess.CompletedProcess, args: list[str]) -> str:
    """The error line; fails unless the output is that line and at most a `full log:` line."""
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    shown = f"lfsd {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}"
    assert r.returncode in (1, 2), shown
    assert "Traceback" not in r.stdout + r.stderr, shown
    assert lines and lines[0].startswith("error: "), shown
    assert all(line.strip().startswith("full log: ") for line in lines[1:]), shown
    return lines[0]


@pytest.mark.slow  # ~50 s: 17 lfsd processes, 4 at a time
def test_every_expected_failure_is_one_line(tmp_path, workspace):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "a-file").write_text("")  # a folder path under a file: an error nothing checks for ahead
    cases = [  # (args, cwd, what the line says)
        (["generate", "x", "--model", "models:/lfs-diffusion@production"], outside, "not inside an lfsd workspace"),
        (["generate", "x", "--concept", "nosuch"], workspace, "--concept"),
        (["generate", "x", "--model", "nosuch"], workspace, "no such folder"),
        (["generate", "x", "--context", "nosuch"], workspace, "no such folder"),
        (["generate", "x", "--model", "models:/lfs-diffusion@production", "--concept", "nosuch"], workspace, ""),
        (["evaluate"], outside, "not inside an lfsd workspace"),
        (["evaluate", "--json"], workspace, "no checkpoint yet"),
        (["promote", "7"], workspace, "does not exist"),
        (["promote", "7", "--dry-run"], workspace, "does not exist"),
        (["evaluate-base", "--model", "nosuch"], workspace, "no such folder"),
        (["benchmark", "forgetting", "--concepts", "nosuch"], workspace, "no such folder"),
        (["benchmark", "scale", "--evaluator", "nosuch"], workspace, "no such folder"),
        (["init", str(workspace)], outside, "already exists"),
        (["init", "new", "--base", "nosuch"], outside, "not a usable base"),
        (["world", "sample", "--out", str(outside / "a-file" / "w.png"), "--n", "1"], outside, "a-file"),
        (["pull"], outside, "not inside an lfsd workspace"),
    ]
    first = _lfsd(["promote", "7"], workspace)  # alone: it creates the MLflow database the others then read
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda c: _lfsd(c[0], c[1]), cases))
    assert "does not exist" in _one_line(first, ["promote", "7"])
    for (args, _, says), r in zip(cases, results):
        assert says in _one_line(r, args), (args, r.stderr)


def test_debug_shows_the_traceback_and_version_and_flags(tmp_path):
    (tmp_path / "a-file").write_text("")
    bad = ["world", "sample", "--out", str(tmp_path / "a-file" / "w.png"), "--n", "1"]
    assert "Traceback" in _lfsd(["--debug", *bad], tmp_path).stderr
    version = _lfsd(["--version"], tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("lfsd "), version
    helped = _lfsd(["evaluate", "--help"], tmp_path)
    assert "--json" in helped.stdout and "<bool>" not in helped.stdout, helped.stdout


def strict_json(text: str):
    """json.loads that refuses NaN / Infinity (what jq and every other strict parser do)."""

    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_strict_json_parser_refuses_nan():
    with pytest.raises(ValueError):
        strict_json(json.dumps({"bwt": math.nan}))


@pytest.mark.slow
def test_promote_dry_run_refuses_an_erased_version_as_the_real_promote_does(workspace, prefect_api):
    """A version tagged as having held an erased concept (what `lfsd forget` leaves): the dry run says what the
    real promote says, with its exit code; neither moves `production`."""
    import mlflow

    from components.registry.erased_versions import ERASED_TAG
    from components.workspace.layout import load_workspace
    from components.workspace.mlflow_store import client
    from tests.integration.services import cli_env

    ws = load_workspace(workspace)
    c, name = client(ws), ws.params.pipeline.model_name
    with mlflow.start_run() as run:
        mlflow.log_metric("avg_forgetting", 0.0)
    c.create_registered_model(name)
    lineage = {"lfsd.dataset_dvc_md5": "d", "lfsd.checkpoint_dvc_md5": "c", "lfsd.git_commit": "g"}
    c.create_model_version(name, "file:///nowhere", run_id=run.info.run_id, tags=lineage | {ERASED_TAG: "xuriby"})

    def lfsd(*args):
        return subprocess.run(
            [sys.executable, "-m", "components.cli", *args],
            cwd=workspace,
            env=cli_env(workspace, prefect_api),
            capture_output=True,
            text=True,
            timeout=300,
        )

    dry, real = lfsd("promote", "1", "--dry-run"), lfsd("promote", "1")
    for r in (dry, real):
        assert r.returncode == 1 and "held xuriby, since erased" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert "dry run: nothing moved" in dry.stderr
    assert c.get_registered_model(name).aliases == {}
