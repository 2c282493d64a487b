"""Ctrl-C as a user presses it: `lfsd onboard` on a pseudo-terminal, SIGINT sent to its foreground process
group (what the terminal does) while the new checkpoint is being evaluated, after Ray Train has run (Ray
Train installs a SIGINT handler of its own during `fit`). The command must abort: exit 130, nothing
registered, `production` unchanged, nothing committed, the attempt discarded. Real processes, real Ray."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import git
from tests.integration.terminal import Terminal

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _mlflow(ws: Path, query: str) -> list[tuple]:
    db = ws / ".lfsd" / "mlflow" / "mlflow.db"
    if not db.exists():
        return []
    with sqlite3.connect(db) as con:
        return con.execute(query).fetchall()


def _signals(pid: int) -> str:
    """How a process that did not stop at Ctrl-C treats SIGINT (ignored and caught signal masks), and what
    its main thread runs: what a failure needs to say why."""
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        masks = ", ".join(line.replace("\t", " ") for line in status if line.startswith(("SigIgn", "SigCgt")))
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except OSError as e:
        return f"its /proc entry could not be read ({e})"
    return f"{masks} (SIGINT is bit 0x2); main thread waits in {wchan or '?'}"


def test_ctrl_c_during_evaluation_aborts_with_nothing_registered(workspace, tmp_path):
    from components.world.concepts import write_concepts
    from tests.integration.services import cli_env

    (concept,) = write_concepts(tmp_path / "in", n=1, shots=3, seed=21)
    head = git(workspace, "rev-parse", "HEAD")
    # Prefect's temporary server, as a user has it: Ctrl-C must not take it down before lfsd has said so
    env = cli_env(workspace, None, LFSD_PAUSE_AT="during-evaluate", TERM="xterm", PYTHONFAULTHANDLER="1")
    term = Terminal([sys.executable, "-m", "components.cli", "onboard", str(concept)], workspace, env)
    try:
        term.wait_for("paused at during-evaluate", timeout=400)  # trained on Ray, evaluating now
        term.ctrl_c()
        t0 = time.time()
        # the pause lasts 120 s, then the run would register: a swallowed Ctrl-C times out here (or exits 0);
        # an abort takes seconds, more on a loaded machine (discarding the attempt, stopping Prefect's server)
        try:
            rc = term.proc.wait(timeout=110)
        except subprocess.TimeoutExpired:
            masks = _signals(term.proc.pid)
            term.abort_with_stacks()  # with PYTHONFAULTHANDLER: where each of its threads was
            pytest.fail(f"no exit 110 s after Ctrl-C; {masks}; it printed (then its stacks):\n{term.text[-12000:]}")
        rc = term.finish(timeout=5)
    finally:
        if term.proc.poll() is None:
            term.finish(timeout=1)
    out = term.text
    assert rc == 130, out[-4000:]
    print(f"{time.time() - t0:.0f} s from Ctrl-C to exit")  # measured, not asserted (machines are noisy)
    assert "interrupted" in out and "full log: " in out, out[-2000:]
    assert "Traceback" not in out, out[-4000:]
    assert _mlflow(workspace, "select count(*) from model_versions") in ([], [(0,)])
    assert _mlflow(workspace, "select count(*) from registered_model_aliases where alias = 'production'") in (
        [],
        [(0,)],
    )
    assert git(workspace, "rev-parse", "HEAD") == head
    assert git(workspace, "status", "--porcelain", "--untracked-files=all") == ""
    assert not [p for p in (workspace / "checkpoints").iterdir() if p.is_dir()]  # the attempt was discarded
