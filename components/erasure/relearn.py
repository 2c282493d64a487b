"""Relearning the concepts after an erased one (`lfsd forget`, `forget.retrain_later`): the exact removal.

Dropping a task's adapter and token leaves the later tasks as they were trained: with the erased task
active and distilled from a teacher that held it, so something of the concept can survive in them
(docs/method.md, "Removing a concept"). Relearning removes that: each later concept is trained again,
in order, from its own kept dataset, on the chain before the erased task, with the training seed and
the task number it had. The result is the model a workspace that never received the concept would have
trained, bitwise (benchmarks/forget_retrain.py, tests/integration/test_forget_relearn.py), at the cost
of one training per later concept. No photo of the erased concept is read.

The relearned tasks live inside the removal's checkpoint (`checkpoints/NN-forget-x/taskK/`: adapter,
token, training record) and its ledger points at them; the old checkpoints of those tasks leave the
chain in the removal's commit (their DVC objects stay for the old, refused versions' history). Until
that commit everything is in the removal's folder, so a failure or a SIGKILL leaves the workspace as it
was; Ray checkpoints name the attempt, so the rerun resumes a killed task where it stopped.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from components.erasure.record import ErasureRecord
from components.workspace.faults import die_here_if_asked
from components.workspace.layout import Workspace

SCRATCH = ".chains"  # inside the removal's folder while relearning: the chain each task starts from


def task_folder(out: Path, task: int) -> Path:
    return Path(out) / f"task{task}"


def attempt(out: Path, start_ledger: Path, dataset: str, method: str) -> str:
    """Names the training attempt: the same relearning of the same chain resumes a killed one."""
    key = hashlib.sha256(start_ledger.read_bytes() + f"|{dataset}|{method}".encode()).hexdigest()[:10]
    return f"{Path(out).name}-{start_ledger.parent.name}-{key}"


def relearn_later(ws: Workspace, record: ErasureRecord, previous: Path, out: Path, launcher, log) -> list[str]:
    """Relearn `record.retrained` in order on the chain without the erased concept; rewrite the removal's
    ledger (`out/ledger.json`) to point at them. Returns the training attempts (dropped after the commit)."""
    from components.lifelong import LEDGER_FILE, Ledger, read_ledger, relativize_ledger
    from components.onboarding import steps

    chain = read_ledger(previous).without(record.concept)  # absolute paths while training
    later = [e for e in chain.entries if e.name in record.retrained]
    attempts = []
    for entry in later:
        start = Path(out) / SCRATCH / f"before-task{entry.task}"
        start.mkdir(parents=True, exist_ok=True)
        chain.before(entry.task).save(start / LEDGER_FILE)
        name = attempt(out, start / LEDGER_FILE, ws.rel(Path(entry.references)), ws.params.training.method)
        dest = task_folder(out, entry.task)
        shutil.rmtree(dest, ignore_errors=True)
        result = steps.train(ws, Path(entry.references), dest, start, launcher, None, name)
        learned = Ledger.read(dest / LEDGER_FILE)
        new = learned.entries[-1]
        if (new.task, new.name, new.token) != (entry.task, entry.name, entry.token):
            raise RuntimeError(f"relearning {entry.name} (task {entry.task}) gave task {new.task} {new.name!r}")
        chain.entries[chain.entries.index(entry)] = new
        attempts.append(name)
        log(f"relearned {entry.name} (task {entry.task}) without {record.concept} in {result.seconds:.1f} s")
        die_here_if_asked("after-forget-relearn")
    shutil.rmtree(Path(out) / SCRATCH, ignore_errors=True)
    for entry in later:  # the removal's ledger is the chain's; a task folder's own would name this machine's paths
        (task_folder(out, entry.task) / LEDGER_FILE).unlink()
    chain.save(Path(out) / LEDGER_FILE)
    relativize_ledger(out, ws.root)
    return attempts
